"""SentenceTransformerEmbedding against a FAKE ``sentence_transformers`` module.

torch is not installed here, so these tests check KeelDB's adapter (arguments passed,
dtype/shape handling, config round trip, the missing-package error) with a stand-in
module injected into ``sys.modules`` — not the real library.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from keeldb.embeddings import EmbeddingFunctionError, SentenceTransformerEmbedding, from_config


class FakeSentenceTransformer:
    calls: list[dict[str, Any]] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model = model
        self.kwargs = kwargs

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        FakeSentenceTransformer.calls.append(kwargs)
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float64)


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("sentence_transformers")
    mod.SentenceTransformer = FakeSentenceTransformer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", mod)
    FakeSentenceTransformer.calls = []


def test_adapter_with_fake_module(fake_module: None) -> None:
    fn = SentenceTransformerEmbedding("some/local-model", device="cpu")
    assert fn.dim == 3
    v = fn(["ab", "abcd"])
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v, [[2, 1, 0], [4, 1, 0]])
    assert FakeSentenceTransformer.calls[0]["normalize_embeddings"] is True
    assert fn._model.kwargs == {"device": "cpu"}
    again = from_config(fn.name, fn.config())
    assert isinstance(again, SentenceTransformerEmbedding) and again.model == "some/local-model"


def test_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(EmbeddingFunctionError, match="sentence-transformers"):
        SentenceTransformerEmbedding("m")
    with pytest.raises(EmbeddingFunctionError):
        from_config("sentence_transformer", {"model": "m"})
