"""Collections with an embedding function through keeldb.Client and keeldb.AsyncClient
against a real server process (issue 14): ``create_collection(embedding=, text=)``,
vector-less upsert (and transaction upsert), string queries in ``search`` /
``search_batch``, ``hybrid_search`` without ``vector=`` — the same answers as the
embedded API, and the engine's errors.

The server is a separate process: it imports the test function's module with
``--embeddings-module`` (this directory on its ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wordhash_embedding import HERE, NAME, WordHash

import keeldb
from keeldb.aclient import AsyncClient
from keeldb.client import Client, RemoteCollection
from keeldb.embeddings import EmbeddingFunction, EmbeddingFunctionError
from keeldb.errors import InvalidArgumentError

DOCS = [
    "the quick brown fox jumps",
    "lazy dogs sleep all day",
    "a quick dog runs home",
    "vector databases store embeddings",
    "full text search finds rare terms",
]
IDS = [f"d{i}" for i in range(len(DOCS))]
META: list[dict[str, Any] | None] = [{"i": i} for i in range(len(DOCS))]


class Unknown(EmbeddingFunction):
    """An embedding function the server's registry does not know."""

    name = "not-on-the-server"
    dim = 4

    def config(self) -> dict[str, Any]:
        return {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from keeldb.server.testing import ServerProcess

    root = Path(tmp_path_factory.mktemp("embedding-client"))
    env = {"PYTHONPATH": HERE}
    args = ["--embeddings-module", "wordhash_embedding"]
    with ServerProcess(root / "db", args=args, env=env) as srv:
        yield srv


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def col(client: Client, request: pytest.FixtureRequest) -> Iterator[RemoteCollection]:
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    collection = client.create_collection(name, embedding=WordHash(), text={"language": None})
    collection.upsert(IDS, metadata=META, documents=DOCS)
    yield collection
    client.drop_collection(name)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[keeldb.Collection]:
    """The same collection embedded: the answers the remote ones must equal."""
    db = keeldb.open(tmp_path / "embedded")
    collection = db.create_collection("c", embedding=WordHash(), text={"language": None})
    collection.upsert(IDS, metadata=META, documents=DOCS)
    try:
        yield collection
    finally:
        db.close()


def _same(remote: list[keeldb.Hit], local: list[keeldb.Hit]) -> None:
    assert [h.id for h in remote] == [h.id for h in local]
    for r, e in zip(remote, local, strict=True):
        assert r.document == e.document and r.metadata == e.metadata
        assert r.distance == pytest.approx(e.distance, rel=1e-5, abs=1e-6)


def test_create_records_the_function_and_the_analyzer(
    client: Client, col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    assert col.dim == 16
    info = col.info()
    assert info.embedding == NAME == embedded.info().embedding
    assert info.analyzer == embedded.info().analyzer
    assert info.analyzer is not None and info.analyzer["options"]["language"] is None
    stats = col.stats()
    assert stats.embedding == NAME and stats.analyzer == info.analyzer
    listed = {i.name: i for i in client.list_collections()}
    assert listed[col.name].embedding == NAME
    # exist_ok with the same function returns it; another config is a conflict
    again = client.create_collection(
        col.name, embedding=WordHash(), text={"language": None}, exist_ok=True
    )
    assert again.info().count == len(DOCS)
    with pytest.raises(keeldb.AlreadyExistsError, match="embedding"):
        client.create_collection(col.name, embedding=WordHash(dim=8), exist_ok=True)


def test_vectors_are_computed_from_the_documents(
    col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    remote = col.get(IDS)
    local = embedded.get(IDS)
    for r, e in zip(remote, local, strict=True):
        assert r is not None and e is not None
        np.testing.assert_allclose(r.vector, e.vector, rtol=1e-6)
        assert r.document == e.document


def test_string_queries_equal_embedded(col: RemoteCollection, embedded: keeldb.Collection) -> None:
    hits = col.search("quick fox", k=3)
    assert hits[0].id == "d0"
    _same(hits, embedded.search("quick fox", k=3))
    _same(col.search("quick fox", k=3, exact=True), embedded.search("quick fox", k=3, exact=True))
    batch = col.search_batch(["quick fox", "rare terms search"], k=2)
    local = embedded.search_batch(["quick fox", "rare terms search"], k=2)
    assert [h[0].id for h in batch] == ["d0", "d4"]
    for r, e in zip(batch, local, strict=True):
        _same(r, e)
    # a vector query still works on such a collection
    vec = WordHash()(["quick fox"], progress=False)[0]
    _same(col.search(vec, k=3), embedded.search(vec, k=3))


def test_hybrid_without_vector_equals_embedded(
    col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    hits = col.hybrid_search("quick dog", 3)
    _same(hits, embedded.hybrid_search("quick dog", 3))
    assert hits[0].id == "d2"


def test_transaction_upsert_without_vectors(
    col: RemoteCollection, embedded: keeldb.Collection
) -> None:
    with col.transaction() as tx:
        tx.upsert(["t1"], documents=["narwhal tusk"], metadata=[{"t": 1}])
        tx.delete(["d1"])
    with embedded.transaction() as etx:
        etx.upsert(["t1"], documents=["narwhal tusk"], metadata=[{"t": 1}])
        etx.delete(["d1"])
    _same(col.search("narwhal", k=6), embedded.search("narwhal", k=6))
    assert col.search("narwhal", k=1)[0].id == "t1"


def test_errors(client: Client, col: RemoteCollection) -> None:
    # unknown on the server: 400 with the registry's message, nothing created
    with pytest.raises(InvalidArgumentError, match="unknown embedding function 'not-on-the-"):
        client.create_collection("unknown_fn", embedding=Unknown())
    assert "unknown_fn" not in {i.name for i in client.list_collections()}
    assert issubclass(EmbeddingFunctionError, InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match="needs dim"):
        client.create_collection("no_dim")
    with pytest.raises(InvalidArgumentError, match="differs from the embedding"):
        client.create_collection("bad_dim", dim=3, embedding=WordHash())
    # checked before sending: every record needs a document when vectors are omitted
    with pytest.raises(InvalidArgumentError, match="document for every record"):
        col.upsert(["x"], documents=[None])
    with pytest.raises(InvalidArgumentError, match="document for every record"):
        col.transaction().upsert(["x"])
    # a collection without an embedding function: the engine's error, as embedded
    plain = client.create_collection("plain_vectors", dim=16)
    try:
        with pytest.raises(InvalidArgumentError):
            plain.search("quick fox")
        with pytest.raises(InvalidArgumentError):
            plain.search_batch(["quick fox"])
        with pytest.raises(InvalidArgumentError):
            plain.upsert(["x"], documents=["quick fox"])
        assert plain.count() == 0
    finally:
        client.drop_collection("plain_vectors")


def test_async_client_has_the_same_embedding_api(server: Any, embedded: keeldb.Collection) -> None:
    async def run() -> None:
        async with AsyncClient(server.url) as ac:
            acol = await ac.create_collection(
                "async_emb", embedding=WordHash(), text={"language": None}
            )
            try:
                await acol.upsert(IDS, metadata=META, documents=DOCS)
                assert (await acol.info()).embedding == NAME
                _same(await acol.search("quick fox", k=3), embedded.search("quick fox", k=3))
                batch = await acol.search_batch(["lazy dogs"], k=2)
                _same(batch[0], embedded.search("lazy dogs", k=2))
                hybrid = await acol.hybrid_search("quick dog", 3)
                _same(hybrid, embedded.hybrid_search("quick dog", 3))
                async with acol.transaction() as tx:
                    tx.upsert(["t1"], documents=["narwhal tusk"])
                assert (await acol.search("narwhal", k=1))[0].id == "t1"
            finally:
                await ac.drop_collection("async_emb")

    asyncio.run(run())
