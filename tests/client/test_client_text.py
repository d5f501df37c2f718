"""Documents, full-text and hybrid search through keeldb.Client and keeldb.AsyncClient
against a real server process: the same answers and errors as the embedded API (issue 14).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.aclient import AsyncClient
from keeldb.client import Client, RemoteCollection
from keeldb.errors import InvalidArgumentError, PermissionDeniedError
from keeldb.server.testing import ServerProcess

ADMIN = "text-admin-key"
READER = "text-reader-key"
DIM = 8

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy afternoon: the dog sleeps in the sun.",
    "Vector databases store embeddings for retrieval.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "Hybrid search fuses keyword and semantic rankings.",
    "The fox and the hound are friends.",
    "Product code XK-42 is out of stock.",
    "Embeddings miss rare terms such as product codes.",
    "Reciprocal rank fusion combines ranked lists.",
    "Nothing about animals or search here: just weather, rain and wind.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("text-client"))
    keys = root / "keys.json"
    keys.write_text(f'[{{"key": "{READER}", "role": "read-only"}}]')
    with ServerProcess(root / "db", args=["--api-key", ADMIN, "--keys-file", str(keys)]) as srv:
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, api_key=ADMIN) as c:
        yield c


def _data() -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    ids = [f"d{i}" for i in range(len(DOCS))]
    vectors = np.random.default_rng(7).normal(size=(len(DOCS), DIM)).astype(np.float32)
    metadata = [{"i": i, "even": i % 2 == 0} for i in range(len(DOCS))]
    return ids, vectors, metadata


@pytest.fixture
def col(client: Client, request: pytest.FixtureRequest) -> Iterator[RemoteCollection]:
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    collection = client.create_collection(name, dim=DIM, metric="l2")
    ids, vectors, metadata = _data()
    collection.upsert(ids, vectors, metadata, documents=DOCS)
    yield collection
    client.drop_collection(name)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[keeldb.Collection]:
    """The same data in an embedded database: the answers the remote ones must equal."""
    db = keeldb.open(tmp_path / "embedded")
    collection = db.create_collection("c", dim=DIM, metric="l2")
    ids, vectors, metadata = _data()
    collection.upsert(ids, vectors, metadata, documents=DOCS)
    try:
        yield collection
    finally:
        db.close()


def _same_hits(remote: list[keeldb.Hit], local: list[keeldb.Hit]) -> None:
    assert [h.id for h in remote] == [h.id for h in local]
    for r, e in zip(remote, local, strict=True):
        assert r.metadata == e.metadata and r.document == e.document
        assert r.score == pytest.approx(e.score, rel=1e-6)
        assert r.distance == pytest.approx(e.distance, rel=1e-6)


def test_get_and_scan_return_documents(col: RemoteCollection) -> None:
    records = col.get(["d0", "d6", "missing"])
    assert records[0] is not None and records[0].document == DOCS[0]
    assert records[1] is not None and records[1].document == DOCS[6]
    assert records[2] is None
    page = col.scan(limit=100)
    assert {r.id: r.document for r in page.records} == {f"d{i}": d for i, d in enumerate(DOCS)}


def test_documents_are_kept_when_omitted_and_replaced_when_given(col: RemoteCollection) -> None:
    vec = np.ones((1, DIM), dtype=np.float32)
    col.upsert(["d0"], vec, [{"i": 0}])  # no documents: the record keeps its own
    col.upsert(["d1"], vec, None, documents=[None])  # a None entry keeps it too
    col.upsert(["d2"], vec, None, documents=["replaced text about zebras"])
    d0, d1, d2 = col.get(["d0", "d1", "d2"])
    assert d0 is not None and d0.document == DOCS[0]
    assert d1 is not None and d1.document == DOCS[1]
    assert d2 is not None and d2.document == "replaced text about zebras"
    assert [h.id for h in col.text_search("zebras")] == ["d2"]
    assert "d2" not in {h.id for h in col.text_search("afternoon sun")}


def test_text_search_equals_embedded(col: RemoteCollection, embedded: keeldb.Collection) -> None:
    for query in ("lazy dog", "fox", "product code", "search ranking fusion", "absent words"):
        _same_hits(col.text_search(query, k=5), embedded.text_search(query, k=5))
    flt = {"even": True}
    _same_hits(col.text_search("fox dog", filter=flt), embedded.text_search("fox dog", filter=flt))
    hits = col.text_search("fox", with_metadata=False, with_documents=False)
    assert hits and all(h.metadata is None and h.document is None for h in hits)
    assert all(h.score is not None and h.score > 0 for h in hits)


def test_hybrid_search_equals_embedded(col: RemoteCollection, embedded: keeldb.Collection) -> None:
    query = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    for kwargs in (
        {},
        {"fusion": "rrf", "rrf_k": 60},
        {"fusion": "weighted", "weights": [0.3, 0.7]},
        {"filter": {"i": {"$lt": 6}}},
    ):
        remote = col.hybrid_search("lazy fox", 4, vector=query, **kwargs)
        _same_hits(remote, embedded.hybrid_search("lazy fox", 4, vector=query, **kwargs))
        assert len(remote) == 4


def test_vector_search_hits_carry_documents(
    col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    q = _data()[1][3]
    hits = col.search(q, k=3)
    assert hits[0].id == "d3" and hits[0].document == DOCS[3] and hits[0].score is None
    assert [h.document for h in hits] == [h.document for h in embedded.search(q, k=3)]
    assert all(h.document is None for h in col.search(q, k=3, with_documents=False))
    batch = col.search_batch(np.stack([q, q]), k=2, with_documents=False)
    assert [[h.id for h in hits] for hits in batch] == [["d3", hits[1].id]] * 2
    assert all(h.document is None for hits in batch for h in hits)
    assert col.search_batch(np.stack([q]), k=1)[0][0].document == DOCS[3]


def test_a_fresh_document_is_found_right_after_upsert_and_a_deleted_one_never(
    col: RemoteCollection,
) -> None:
    vec = np.ones((1, DIM), dtype=np.float32)
    for i in range(20):
        word = f"freshterm{i}"
        col.upsert([f"new{i}"], vec, documents=[f"a brand new document with {word}"])
        assert [h.id for h in col.text_search(word)] == [f"new{i}"]
    assert col.delete(["new3", "new4"]) == 2
    assert col.text_search("freshterm3") == []
    assert col.delete(filter={"i": {"$lt": 5}}) == 5
    found = {h.id for h in col.text_search("lazy fox dog product", k=20)}
    assert found and not found & {f"d{i}" for i in range(5)}


def test_transactions_carry_documents(col: RemoteCollection) -> None:
    vec = np.ones((2, DIM), dtype=np.float32)
    with col.transaction() as tx:
        tx.upsert(["t1", "t2"], vec, documents=["walrus on ice", None])
        tx.delete(["d6"])
    t1, t2 = col.get(["t1", "t2"])
    assert t1 is not None and t1.document == "walrus on ice"
    assert t2 is not None and t2.document is None
    assert [h.id for h in col.text_search("walrus")] == ["t1"]
    assert col.text_search("XK-42") == []
    tx = col.transaction()
    with pytest.raises(InvalidArgumentError, match="documents"):
        tx.upsert(["t3"], vec[:1], documents=["one", "two"])  # refused when staged
    with pytest.raises(InvalidArgumentError, match=r"documents\[0\]"):
        tx.upsert(["t3"], vec[:1], documents=[b"bytes"])  # type: ignore[list-item]


def test_errors_are_the_embedded_ones(col: RemoteCollection, embedded: keeldb.Collection) -> None:
    vec = np.ones(DIM, dtype=np.float32)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("hybrid_search", {"query": "fox"}, "needs vector="),  # no embedding function
        ("hybrid_search", {"query": "fox", "vector": vec, "fusion": "max"}, "fusion"),
        ("hybrid_search", {"query": "fox", "vector": vec, "weights": [1.0]}, "weights"),
        ("hybrid_search", {"query": "fox", "vector": vec, "rrf_k": -1}, "rrf_k"),
        ("hybrid_search", {"query": "fox", "vector": vec, "k": 0}, "k must be"),
        ("text_search", {"query": 42}, "query must be a str"),
        ("text_search", {"query": "fox", "k": 0}, "k must be"),
        ("text_search", {"query": "fox", "filter": {"i": {"$nope": 1}}}, r"\$nope"),
        ("text_search", {"query": "fox", "with_documents": "no"}, "with_documents"),
    ]
    for method, kwargs, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            getattr(embedded, method)(**kwargs)
        with pytest.raises(InvalidArgumentError, match=message):
            getattr(col, method)(**kwargs)
    with pytest.raises(InvalidArgumentError, match="lengths disagree"):
        col.upsert(["x"], vec[None], documents=["a", "b"])


def test_a_read_only_key_searches_text_but_cannot_write_documents(
    server: ServerProcess, col: RemoteCollection
) -> None:
    with Client(server.url, api_key=READER) as reader:
        rcol = reader.get_collection(col.name)
        assert rcol.text_search("fox")[0].document in DOCS
        assert rcol.hybrid_search("fox", vector=np.ones(DIM))[0].score is not None
        with pytest.raises(PermissionDeniedError):
            rcol.upsert(["z"], np.ones((1, DIM)), documents=["z"])


def test_async_client_has_the_same_text_api(server: ServerProcess, col: RemoteCollection) -> None:
    async def run() -> None:
        async with AsyncClient(server.url, api_key=ADMIN) as ac:
            acol = await ac.get_collection(col.name)
            await acol.upsert(["a1"], np.ones((1, DIM)), documents=["asynchronous narwhal"])
            assert [h.id for h in await acol.text_search("narwhal")] == ["a1"]
            (rec,) = await acol.get(["a1"])
            assert rec is not None and rec.document == "asynchronous narwhal"
            hits = await acol.hybrid_search("narwhal", 3, vector=np.ones(DIM))
            assert hits[0].id == "a1" and hits[0].document == "asynchronous narwhal"
            assert (await acol.search(np.ones(DIM), k=1, with_documents=False))[0].document is None
            async with acol.transaction() as tx:
                tx.upsert(["a2"], np.ones((1, DIM)), documents=["narwhal tusk"])
            assert {h.id for h in await acol.text_search("narwhal")} == {"a1", "a2"}
            with pytest.raises(InvalidArgumentError, match="needs vector="):
                await acol.hybrid_search("narwhal")

    asyncio.run(run())


def test_document_filters_equal_embedded(
    col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    """``$contains`` / ``$text`` filters pass through HTTP unchanged: the server's answers
    equal the embedded ones (issue 14)."""
    q = np.ones(DIM, dtype=np.float32)
    for flt in (
        {"$contains": "fox"},
        {"$contains": "XK-42"},
        {"$text": "lazy dogs"},
        {"$and": [{"$text": "search"}, {"even": True}]},
        {"$not": {"$contains": "the"}},
    ):
        assert col.count(flt) == embedded.count(flt), flt
        remote_hits = col.search(q, k=10, filter=flt, exact=True)
        local_hits = embedded.search(q, k=10, filter=flt, exact=True)
        assert [h.id for h in remote_hits] == [h.id for h in local_hits]
        remote_page = col.scan(filter=flt, limit=100).records
        assert [r.id for r in remote_page] == [
            r.id for r in embedded.scan(filter=flt, limit=100).records
        ]
        _same_hits(
            col.text_search("fox search", 10, filter=flt),
            embedded.text_search("fox search", 10, filter=flt),
        )
