"""The embedding-function protocol and registry."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from keeldb.embeddings import (
    EmbeddingFunction,
    EmbeddingFunctionError,
    available,
    from_config,
    register,
)
from keeldb.errors import InvalidArgumentError


class Hashing(EmbeddingFunction):
    """A deterministic toy: counts of characters modulo dim."""

    name = "test_hashing"

    def __init__(self, dim: int = 8, batch_size: int = 4) -> None:
        self.dim = dim
        self.batch_size = batch_size
        self.batches: list[int] = []

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "batch_size": self.batch_size}

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            for ch in t:
                out[i, ord(ch) % self.dim] += 1
        return out


register("test_hashing")(Hashing)


def test_batches_and_shape() -> None:
    fn = Hashing(batch_size=4)
    v = fn([f"text {i}" for i in range(10)])
    assert v.shape == (10, 8) and v.dtype == np.float32
    assert fn.batches == [4, 4, 2]
    assert fn([]).shape == (0, 8)


def test_registry_round_trip() -> None:
    fn = Hashing(dim=5)
    again = from_config(fn.name, fn.config())
    assert isinstance(again, Hashing) and again.dim == 5
    assert "test_hashing" in available()


def test_unknown_and_bad_configs_are_typed_errors() -> None:
    with pytest.raises(EmbeddingFunctionError, match="unknown embedding function 'nope'"):
        from_config("nope", {})
    with pytest.raises(EmbeddingFunctionError, match="unavailable"):
        from_config("test_hashing", {"colour": 3})
    assert issubclass(EmbeddingFunctionError, InvalidArgumentError)


def test_wrong_shape_is_refused() -> None:
    class Broken(Hashing):
        def _embed(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 3))

    with pytest.raises(EmbeddingFunctionError, match="shape"):
        Broken()(["a"])


def test_texts_must_be_strings() -> None:
    with pytest.raises(InvalidArgumentError):
        Hashing()("not a list")
    with pytest.raises(InvalidArgumentError):
        Hashing()([1, 2])  # type: ignore[list-item]


def test_progress_bar_draws_when_asked() -> None:
    stream = io.StringIO()
    Hashing(batch_size=2)(["a"] * 9, progress=True, stream=stream)
    assert "embedding (test_hashing)" in stream.getvalue()
    assert "9/9" in stream.getvalue()
    quiet = io.StringIO()
    Hashing(batch_size=2)(["a"] * 9, progress=False, stream=quiet)
    assert quiet.getvalue() == ""
