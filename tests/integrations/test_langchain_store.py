"""keeldb.integrations.langchain.KeelDBVectorStore beyond LangChain's standard suite:
relevance scores per metric, filters, MMR, retrievers (similarity, threshold, mmr, hybrid,
text), full-text and hybrid search, from_texts/from_documents, deletes, and native async
over the remote backend — each on the embedded and the remote backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import base as langchain_base  # noqa: E402

import keeldb  # noqa: E402
from keeldb.errors import DimensionMismatchError, InvalidArgumentError  # noqa: E402
from keeldb.integrations.backend import relevance_score  # noqa: E402
from keeldb.integrations.langchain import KeelDBRetriever, KeelDBVectorStore  # noqa: E402
from keeldb.server.testing import ServerProcess  # noqa: E402

BACKENDS = ["path", "database", "url", "clients"]


class TableEmbeddings(Embeddings):
    """Vectors looked up by text (a query not in the table is embedded as its first
    word's vector): exact control over distances."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table.get(text) or self.table[text.split()[0]]


TABLE = {
    "apples and pears": [1.0, 0.0, 0.0],
    "apples and more apples": [1.0, 0.02, 0.0],  # a near-duplicate of the first
    "pears in syrup": [0.8, 0.6, 0.0],
    "rocket engines": [0.0, 0.0, 1.0],
    "apples": [1.0, 0.0, 0.0],
    "rocket": [0.0, 0.0, 1.0],
    "syrup": [0.0, 1.0, 0.0],
    "near": [1.0, 0.1, 0.0],  # MMR query: closest to the near-duplicate pair
}
META = {
    "apples and pears": {"kind": "fruit", "year": 2019},
    "apples and more apples": {"kind": "fruit", "year": 2021},
    "pears in syrup": {"kind": "fruit", "year": 2023},
    "rocket engines": {"kind": "space", "year": 2024},
}
TEXTS = list(META)


@pytest.fixture
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., KeelDBVectorStore]]:
    """``make_store(backend, **kwargs)``: an empty store on that backend (dropped and
    closed after, with the clients made for it)."""
    made: list[tuple[KeelDBVectorStore, Any]] = []

    def make(backend: str, **kwargs: Any) -> KeelDBVectorStore:
        emb = kwargs.pop("embedding", TableEmbeddings(TABLE))
        name = f"lc-{uuid.uuid4().hex[:12]}"
        extra: Any = None
        if backend == "path":
            store = KeelDBVectorStore(emb, path=str(tmp_path / name), **kwargs)
        elif backend == "database":
            extra = keeldb.open(str(tmp_path / name))
            store = KeelDBVectorStore(emb, client=extra, collection_name=name, **kwargs)
        else:
            server: ServerProcess = request.getfixturevalue("keel_server")
            if backend == "url":
                store = KeelDBVectorStore(emb, url=server.url, collection_name=name, **kwargs)
            else:
                extra = (keeldb.Client(server.url), keeldb.AsyncClient(server.url))
                store = KeelDBVectorStore(
                    emb, client=extra[0], async_client=extra[1], collection_name=name, **kwargs
                )
        made.append((store, extra))
        return store

    yield make
    for store, extra in made:
        if store.backend.is_remote:
            store.drop()
        await store.aclose()
        if isinstance(extra, keeldb.Database):
            extra.close()
        elif extra is not None:
            extra[0].close()
            await extra[1].aclose()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, make_store: Callable[..., KeelDBVectorStore]
) -> AsyncIterator[KeelDBVectorStore]:
    """A store with the four TEXTS added (ids = their first two words, dashed)."""
    s = make_store(request.param)
    s.add_texts(TEXTS, [META[t] for t in TEXTS], ids=[_id(t) for t in TEXTS])
    yield s


def _id(text: str) -> str:
    words = text.split()
    return f"{words[0]}-{words[-1]}"


def _ids(docs: list[Document]) -> list[str | None]:
    return [d.id for d in docs]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("backend", ["path", "url"])
async def test_relevance_scores_follow_the_documented_rule(
    make_store: Callable[..., KeelDBVectorStore], backend: str, metric: str
) -> None:
    store = make_store(backend, metric=metric)
    store.add_texts(TEXTS, ids=[_id(t) for t in TEXTS])
    with_distance = store.similarity_search_with_score("apples", k=4)
    relevance = store.similarity_search_with_relevance_scores("apples", k=4)
    assert _ids([d for d, _ in relevance]) == _ids([d for d, _ in with_distance])
    for (_, dist), (_, rel) in zip(with_distance, relevance, strict=True):
        assert rel == pytest.approx(relevance_score(metric, dist))
        assert 0.0 <= rel <= 1.0
    assert relevance[0][1] == pytest.approx(1.0, abs=1e-6)  # "apples and pears" itself
    # the query is orthogonal to "rocket engines": cos 0 -> 0.5 (cosine, ip), l2 sqrt(2)
    rocket = dict((d.id, r) for d, r in relevance)["rocket-engines"]
    expected = {"cosine": 0.5, "ip": 0.5, "l2": 1 / (1 + 2**0.5)}[metric]
    assert rocket == pytest.approx(expected, abs=1e-6)


def test_relevance_score_formulas() -> None:
    assert relevance_score("cosine", 0.0) == 1.0
    assert relevance_score("cosine", 2.0) == 0.0
    assert relevance_score("l2", 0.0) == 1.0
    assert relevance_score("l2", 3.0) == 0.25
    assert relevance_score("ip", -1.0) == 1.0  # dot 1
    assert relevance_score("ip", 1.0) == 0.0  # dot -1
    assert relevance_score("ip", -5.0) == 1.0  # saturates
    with pytest.raises(InvalidArgumentError):
        relevance_score("hamming", 0.0)


async def test_filters_pass_through(store: KeelDBVectorStore) -> None:
    flt = {"kind": "fruit", "year": {"$gte": 2021}}
    expected = ["apples-apples", "pears-syrup"]
    assert _ids(store.similarity_search("apples", k=4, filter=flt)) == expected
    assert _ids(await store.asimilarity_search("apples", k=4, filter=flt)) == expected
    by_vector = store.similarity_search_by_vector([0.0, 0.0, 1.0], k=1, filter={"kind": "fruit"})
    assert by_vector[0].metadata["kind"] == "fruit"
    assert (await store.asimilarity_search_by_vector([0.0, 0.0, 1.0], k=1))[
        0
    ].id == "rocket-engines"
    with pytest.raises(InvalidArgumentError):
        store.similarity_search("apples", filter={"year": {"$regex": "x"}})


async def test_max_marginal_relevance(store: KeelDBVectorStore) -> None:
    # by similarity the two near-duplicate apple texts come first; MMR (lambda 0.5)
    # takes the closest, then prefers the more diverse "pears in syrup" (worked out by
    # hand: 0.5 * 0.856 - 0.5 * 0.812 > 0.5 * 0.995 - 0.5 * 0.9998)
    plain = store.similarity_search("near", k=2)
    assert [d.page_content for d in plain] == ["apples and more apples", "apples and pears"]
    mmr = store.max_marginal_relevance_search("near", k=2, fetch_k=4, lambda_mult=0.5)
    assert [d.page_content for d in mmr] == ["apples and more apples", "pears in syrup"]
    amrr = await store.amax_marginal_relevance_search("near", k=2, fetch_k=4, lambda_mult=0.5)
    assert [d.page_content for d in amrr] == ["apples and more apples", "pears in syrup"]
    only_sim = store.max_marginal_relevance_search("near", k=2, fetch_k=4, lambda_mult=1.0)
    assert [d.page_content for d in only_sim] == [d.page_content for d in plain]
    filtered = store.max_marginal_relevance_search("apples", k=2, filter={"year": {"$gt": 2020}})
    assert {d.metadata["year"] for d in filtered} <= {2021, 2023, 2024}


async def test_retrievers(store: KeelDBVectorStore) -> None:
    r = store.as_retriever(search_kwargs={"k": 1})
    assert isinstance(r, KeelDBRetriever)
    assert r.invoke("apples")[0].page_content == "apples and pears"
    r = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    expected = ["apples and more apples", "pears in syrup"]
    assert [d.page_content for d in r.invoke("near")] == expected
    assert [d.page_content for d in await r.ainvoke("near")] == expected
    r = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.8, "k": 4}
    )
    # cosine relevance (1 + cos) / 2 >= 0.8  <=>  cos >= 0.6: the three fruit texts
    assert len(r.invoke("apples")) == 3
    assert len(await r.ainvoke("apples")) == 3
    r = store.as_retriever(search_type="text", search_kwargs={"k": 4})
    assert [d.page_content for d in r.invoke("syrup")] == ["pears in syrup"]
    assert [d.page_content for d in await r.ainvoke("syrup")] == ["pears in syrup"]
    r = store.as_retriever(search_type="hybrid", search_kwargs={"k": 1, "filter": {"year": 2024}})
    assert [d.page_content for d in r.invoke("rocket engines")] == ["rocket engines"]
    assert [d.page_content for d in await r.ainvoke("rocket engines")] == ["rocket engines"]
    with pytest.raises(ValueError, match="search_type"):
        store.as_retriever(search_type="nearest")


async def test_text_and_hybrid_search(store: KeelDBVectorStore) -> None:
    scored = store.text_search_with_score("pears", k=4)
    assert {d.page_content for d, _ in scored} == {"apples and pears", "pears in syrup"}
    assert all(s > 0 for _, s in scored)
    assert [d.id for d, _ in await store.atext_search_with_score("pears", k=4)] == [
        d.id for d, _ in scored
    ]
    assert store.text_search("pears", k=4, filter={"year": 2023})[0].id == "pears-syrup"
    # "syrup" embeds orthogonally to every fruit but "pears in syrup" contains it
    dense_only = store.hybrid_search("syrup", k=2, weights=(1.0, 0.0))
    assert _ids(dense_only) == _ids(store.similarity_search("syrup", k=2))
    text_heavy = store.hybrid_search_with_score("syrup", k=1, fusion="weighted", weights=(0, 1))
    assert text_heavy[0][0].page_content == "pears in syrup" and text_heavy[0][1] > 0
    fused = await store.ahybrid_search("apples", k=4, filter={"kind": "fruit"})
    assert {d.metadata["kind"] for d in fused} == {"fruit"}


async def test_get_by_ids_and_deletes(store: KeelDBVectorStore) -> None:
    got = store.get_by_ids(["pears-syrup", "nope", "apples-apples"])
    assert [d.id for d in got] == ["pears-syrup", "apples-apples"]
    assert got[0] == Document(
        id="pears-syrup", page_content="pears in syrup", metadata=META[TEXTS[2]]
    )
    assert store.delete(filter={"year": {"$lt": 2021}})  # "apples and pears"
    assert [d.id for d in await store.aget_by_ids(["apples-pears", "rocket-engines"])] == [
        "rocket-engines"
    ]
    assert await store.adelete(filter={"kind": "space"})
    left = {d.id for d in store.similarity_search("rocket", k=4)}
    assert left == {"apples-apples", "pears-syrup"}
    assert store.delete()  # ids=None: every record
    assert store.similarity_search("apples", k=4) == []


@pytest.mark.parametrize("backend", ["path", "url"])
async def test_from_texts_and_from_documents(
    make_store: Callable[..., KeelDBVectorStore], backend: str, tmp_path: Path, request: Any
) -> None:
    emb = TableEmbeddings(TABLE)
    if backend == "path":
        where: dict[str, Any] = {"path": str(tmp_path / "ft")}
    else:
        where = {
            "url": request.getfixturevalue("keel_server").url,
            "collection_name": f"ft-{uuid.uuid4().hex[:8]}",
        }
    s = KeelDBVectorStore.from_texts(TEXTS[:2], emb, [{"n": 1}, {"n": 2}], ids=["a", "b"], **where)
    try:
        assert [d.id for d in s.get_by_ids(["a", "b"])] == ["a", "b"]
    finally:
        s.drop()
        s.close()
    docs = [Document(page_content=TEXTS[0], id="x"), Document(page_content=TEXTS[3])]
    s = await KeelDBVectorStore.afrom_documents(docs, emb, **where)
    try:
        found = s.similarity_search("rocket", k=2)
        assert found[1].id == "x" and found[0].id not in (None, "", "x")  # generated id
        assert docs[1].id is None  # the input is not modified
    finally:
        s.drop()
        await s.aclose()


def test_bad_arguments(make_store: Callable[..., KeelDBVectorStore], tmp_path: Path) -> None:
    emb = TableEmbeddings(TABLE)
    with pytest.raises(InvalidArgumentError):
        KeelDBVectorStore(emb)
    with pytest.raises(InvalidArgumentError):
        KeelDBVectorStore(emb, path=str(tmp_path / "a"), url="http://127.0.0.1:1")
    with pytest.raises(InvalidArgumentError):
        KeelDBVectorStore(emb, path=str(tmp_path / "b"), metric="hamming")
    store = make_store("path")
    with pytest.raises(InvalidArgumentError):
        store.add_texts(TEXTS, metadatas=[{}])
    store.add_texts(TEXTS[:1])
    wide = KeelDBVectorStore(
        TableEmbeddings({"w": [1.0, 0.0, 0.0, 0.0]}), client=store.client
    )  # same db
    with pytest.raises(DimensionMismatchError):
        wide.add_texts(["w"])


async def test_async_is_native_over_the_remote_backend(
    make_store: Callable[..., KeelDBVectorStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With url= the a* methods go through keeldb.AsyncClient: no worker thread at all."""

    async def no_threads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an a* method fell back to a worker thread")

    store = make_store("url")
    monkeypatch.setattr(asyncio, "to_thread", no_threads)  # the backend's fallback
    monkeypatch.setattr(langchain_base, "run_in_executor", no_threads)  # LangChain's
    await store.aadd_texts(TEXTS, [META[t] for t in TEXTS], ids=[_id(t) for t in TEXTS])
    assert (await store.asimilarity_search("apples", k=1))[0].id == "apples-pears"
    assert len(await store.asimilarity_search_with_relevance_scores("apples", k=2)) == 2
    assert (await store.atext_search("rocket", k=1))[0].id == "rocket-engines"
    assert (await store.ahybrid_search("rocket", k=1))[0].id == "rocket-engines"
    assert len(await store.amax_marginal_relevance_search("apples", k=2)) == 2
    assert [d.id for d in await store.aget_by_ids(["pears-syrup"])] == ["pears-syrup"]
    await store.adelete(["pears-syrup"])
    assert await store.aget_by_ids(["pears-syrup"]) == []
    monkeypatch.undo()
