"""keeldb.integrations.llama_index.KeelDBVectorStore on both backends, modelled on the
Chroma and LanceDB integrations' own tests (add/query sync and async, metadata-only
queries, get_nodes, delete_nodes, delete by ref_doc_id, clear), plus every filter
operator checked against LlamaIndex's own filter semantics, the text and hybrid modes, and
an end-to-end VectorStoreIndex build and retrieval with a mock embedding."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="needs the llama-index extra")
from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from keeldb.errors import InvalidArgumentError  # noqa: E402
from keeldb.integrations.llama_index import KeelDBVectorStore  # noqa: E402
from keeldb.server.testing import ServerProcess  # noqa: E402

BACKENDS = ["embedded", "remote"]


@pytest.fixture(params=BACKENDS)
async def vector_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeelDBVectorStore]:
    """An empty store: a fresh embedded database, or a fresh collection on the server
    (sync calls through keeldb.Client, async ones through keeldb.AsyncClient)."""
    if request.param == "embedded":
        store = KeelDBVectorStore(path=str(tmp_path / "db"))
        try:
            yield store
        finally:
            store.close()
        return
    server: ServerProcess = request.getfixturevalue("keel_server")
    name = f"li-{uuid.uuid4().hex[:12]}"
    store = KeelDBVectorStore(url=server.url, collection_name=name)
    try:
        yield store
    finally:
        store.backend.drop()
        await store.aclose()


def _nodes() -> list[TextNode]:
    """Chroma's test nodes, with list and numeric metadata added for the operators."""
    rows: list[tuple[str, str, dict[str, Any], list[float]]] = [
        (
            "c330d77f",
            "lorem ipsum",
            {
                "author": "Stephen King",
                "theme": "Friendship",
                "year": 1982,
                "tags": ["horror", "novel"],
            },
            [1.0, 0.0, 0.0],
        ),
        (
            "c3d1e1dd",
            "lorem ipsum",
            {"director": "Francis Ford Coppola", "theme": "Mafia", "year": 1972, "tags": ["film"]},
            [0.0, 1.0, 0.0],
        ),
        (
            "c3ew11cd",
            "lorem ipsum",
            {"director": "Christopher Nolan", "year": 2010, "rating": 8.8},
            [0.0, 0.0, 1.0],
        ),
        (
            "0b31ae71",
            "I was taught that the way of progress was neither swift nor easy.",
            {"author": "Marie Curie", "year": 1921, "tags": ["science", "novel"]},
            [0.0, 0.0, 0.9],
        ),
        (
            "bd2e080b",
            "The important thing is not to stop questioning. Curiosity has its "
            "own reason for existing.",
            {"author": "Albert Einstein", "rating": 9.5},
            [0.0, 0.1, 0.5],
        ),
        (
            "f658de3b",
            "I am no bird; and no net ensnares me; I am a free human being with "
            "an independent will.",
            {"author": "Charlotte Bronte", "tags": ["novel"]},
            [0.1, 0.0, 0.3],
        ),
    ]
    return [
        TextNode(
            text=text,
            id_=id_,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i}")},
            metadata=meta,
            embedding=emb,
        )
        for i, (id_, text, meta, emb) in enumerate(rows)
    ]


async def _add(store: KeelDBVectorStore, nodes: list[TextNode], use_async: bool) -> list[str]:
    if use_async:
        return await store.async_add(nodes)
    return store.add(nodes)


def test_class() -> None:
    assert BasePydanticVectorStore in KeelDBVectorStore.__mro__
    assert KeelDBVectorStore.model_fields["stores_text"].default is True


def test_store_needs_exactly_one_location(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        KeelDBVectorStore()
    with pytest.raises(InvalidArgumentError):
        KeelDBVectorStore(path=str(tmp_path / "a"), url="http://127.0.0.1:1")


@pytest.mark.parametrize("use_async", [True, False])
async def test_add_and_query(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    nodes = _nodes()
    ids = await _add(vector_store, nodes, use_async)
    assert ids == [n.node_id for n in nodes]
    query = VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=2)
    res = await vector_store.aquery(query) if use_async else vector_store.query(query)
    assert res.ids is not None and res.nodes is not None and res.similarities is not None
    assert res.ids[0] == "c330d77f"
    assert res.nodes[0].get_content() == "lorem ipsum"
    assert res.nodes[0].metadata["author"] == "Stephen King"
    assert res.nodes[0].ref_doc_id == "doc-0"
    assert res.similarities[0] == pytest.approx(1.0, abs=1e-6)  # cosine similarity
    assert res.similarities[0] >= res.similarities[1]


async def test_collection_created_at_first_add_with_the_embedding_size(
    vector_store: KeelDBVectorStore,
) -> None:
    assert vector_store.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0])).ids == []
    assert vector_store.get_nodes(node_ids=["c330d77f"]) == []
    vector_store.add(_nodes())
    assert vector_store.backend.collection().dim == 3


@pytest.mark.parametrize("use_async", [True, False])
async def test_query_by_metadata_filters_only(
    vector_store: KeelDBVectorStore, use_async: bool
) -> None:
    await _add(vector_store, _nodes(), use_async)
    filters = MetadataFilters(
        filters=[MetadataFilter(key="author", value="Marie Curie", operator=FilterOperator.EQ)]
    )
    query = VectorStoreQuery(filters=filters, similarity_top_k=1)
    res = await vector_store.aquery(query) if use_async else vector_store.query(query)
    assert res.nodes is not None and len(res.nodes) == 1
    assert res.nodes[0].get_content() == (
        "I was taught that the way of progress was neither swift nor easy."
    )


@pytest.mark.parametrize("use_async", [True, False])
async def test_get_nodes(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)
    ids = ["c3ew11cd", "c330d77f", "missing", "c3d1e1dd"]
    res = (
        await vector_store.aget_nodes(node_ids=ids)
        if use_async
        else vector_store.get_nodes(node_ids=ids)
    )
    assert [n.node_id for n in res] == ["c3ew11cd", "c330d77f", "c3d1e1dd"]
    assert all(n.get_content() == "lorem ipsum" for n in res)
    flt = MetadataFilters(filters=[MetadataFilter(key="year", value=2000, operator="<")])
    both = vector_store.get_nodes(node_ids=ids, filters=flt)
    assert sorted(n.node_id for n in both) == ["c330d77f", "c3d1e1dd"]
    assert len(vector_store.get_nodes()) == 6


@pytest.mark.parametrize("use_async", [True, False])
async def test_delete_nodes(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)
    ids = ["c330d77f", "c3d1e1dd"]
    if use_async:
        await vector_store.adelete_nodes(node_ids=ids)
    else:
        vector_store.delete_nodes(node_ids=ids)
    res = vector_store.get_nodes(node_ids=[*ids, "c3ew11cd"])
    assert [n.node_id for n in res] == ["c3ew11cd"]
    # ids and filters together: only the listed nodes that match
    flt = MetadataFilters(filters=[MetadataFilter(key="author", value="Marie Curie")])
    vector_store.delete_nodes(node_ids=["0b31ae71", "bd2e080b"], filters=flt)
    assert sorted(n.node_id for n in vector_store.get_nodes()) == [
        "bd2e080b",
        "c3ew11cd",
        "f658de3b",
    ]
    # by filter alone
    flt = MetadataFilters(filters=[MetadataFilter(key="rating", value=9.0, operator=">")])
    vector_store.delete_nodes(filters=flt)
    assert sorted(n.node_id for n in vector_store.get_nodes()) == ["c3ew11cd", "f658de3b"]


@pytest.mark.parametrize("use_async", [True, False])
async def test_delete_by_ref_doc_id(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)
    if use_async:
        await vector_store.adelete(ref_doc_id="doc-0")
    else:
        vector_store.delete(ref_doc_id="doc-0")
    remaining = {n.node_id for n in vector_store.get_nodes()}
    assert "c330d77f" not in remaining and len(remaining) == 5


@pytest.mark.parametrize("use_async", [True, False])
async def test_clear(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)
    if use_async:
        await vector_store.aclear()
    else:
        vector_store.clear()
    assert vector_store.get_nodes(node_ids=["c330d77f", "c3d1e1dd", "c3ew11cd"]) == []
    assert vector_store.get_nodes() == []


def _f(key: str, value: Any, op: str) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=FilterOperator(op))


FILTER_CASES: list[MetadataFilters] = [
    MetadataFilters(filters=[_f("theme", "Mafia", "==")]),
    MetadataFilters(filters=[_f("theme", "Mafia", "!=")]),
    MetadataFilters(filters=[_f("year", 1972, ">")]),
    MetadataFilters(filters=[_f("year", 1972, ">=")]),
    MetadataFilters(filters=[_f("year", 1982, "<")]),
    MetadataFilters(filters=[_f("year", 1982, "<=")]),
    MetadataFilters(filters=[_f("rating", 9.0, "<")]),
    MetadataFilters(filters=[_f("author", ["Marie Curie", "Stephen King"], "in")]),
    MetadataFilters(filters=[_f("author", ["Marie Curie", "Stephen King"], "nin")]),
    MetadataFilters(filters=[_f("tags", "novel", "contains")]),
    MetadataFilters(filters=[_f("tags", ["film", "science"], "any")]),
    MetadataFilters(filters=[_f("tags", ["novel", "horror"], "all")]),
    MetadataFilters(
        filters=[_f("year", 1950, ">"), _f("theme", "Mafia", "==")], condition=FilterCondition.OR
    ),
    MetadataFilters(
        filters=[_f("year", 1950, ">"), _f("tags", "novel", "contains")],
        condition=FilterCondition.AND,
    ),
    MetadataFilters(
        filters=[_f("year", 1950, ">"), _f("author", "Marie Curie", "==")],
        condition=FilterCondition.NOT,
    ),
]


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: repr(f.model_dump())[:60])
async def test_filters_match_llama_index_semantics(
    vector_store: KeelDBVectorStore, filters: MetadataFilters
) -> None:
    """Every translatable operator and condition selects exactly the nodes LlamaIndex's
    own in-memory filter (build_metadata_filter_fn) selects."""
    nodes = _nodes()
    vector_store.add(nodes)
    by_id = {n.node_id: n.metadata for n in nodes}
    expected = sorted(i for i in by_id if build_metadata_filter_fn(by_id.__getitem__, filters)(i))
    got = sorted(n.node_id for n in vector_store.get_nodes(filters=filters))
    assert got == expected
    query = VectorStoreQuery(query_embedding=[0.0, 0.0, 1.0], similarity_top_k=10, filters=filters)
    res = await vector_store.aquery(query)
    assert sorted(res.ids or []) == expected


def test_nested_filters_are_translated(vector_store: KeelDBVectorStore) -> None:
    vector_store.add(_nodes())
    inner = MetadataFilters(
        filters=[_f("author", "Marie Curie", "=="), _f("director", "Christopher Nolan", "==")],
        condition=FilterCondition.OR,
    )
    outer = MetadataFilters(filters=[inner, _f("year", 2000, "<")])
    assert [n.node_id for n in vector_store.get_nodes(filters=outer)] == ["0b31ae71"]


@pytest.mark.parametrize("op", ["text_match", "text_match_insensitive", "is_empty"])
def test_inexpressible_operators_are_refused(vector_store: KeelDBVectorStore, op: str) -> None:
    vector_store.add(_nodes())
    filters = MetadataFilters(filters=[_f("author", "Marie", op)])
    with pytest.raises(InvalidArgumentError, match=op):
        vector_store.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], filters=filters))


@pytest.mark.parametrize("use_async", [True, False])
async def test_text_search_mode(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)
    query = VectorStoreQuery(
        query_str="curiosity questioning", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3
    )
    res = await vector_store.aquery(query) if use_async else vector_store.query(query)
    assert res.ids == ["bd2e080b"]  # only documents containing a query term
    assert res.similarities is not None and res.similarities[0] > 0
    flt = MetadataFilters(filters=[_f("author", "Marie Curie", "==")])
    query.filters = flt
    assert vector_store.query(query).ids == []


@pytest.mark.parametrize("use_async", [True, False])
async def test_hybrid_mode_honours_alpha(vector_store: KeelDBVectorStore, use_async: bool) -> None:
    await _add(vector_store, _nodes(), use_async)

    async def run(alpha: float | None, k: int) -> list[str]:
        query = VectorStoreQuery(
            query_embedding=[1.0, 0.0, 0.0],
            query_str="free human being bird",
            mode=VectorStoreQueryMode.HYBRID,
            similarity_top_k=k,
            alpha=alpha,
        )
        res = await vector_store.aquery(query) if use_async else vector_store.query(query)
        return list(res.ids or [])

    # (the dense top 2 is unique; the other four nodes tie at cosine 0)
    dense = vector_store.query(
        VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=2)
    )
    assert await run(1.0, 2) == dense.ids == ["c330d77f", "f658de3b"]  # all weight on dense
    assert (await run(0.0, 1)) == ["f658de3b"]  # all weight on BM25
    assert (await run(0.5, 1)) == ["f658de3b"]  # ranked 2nd dense and 1st by BM25
    with pytest.raises(InvalidArgumentError):
        await run(1.5, 2)


def test_unsupported_modes_and_node_ids_are_refused(vector_store: KeelDBVectorStore) -> None:
    vector_store.add(_nodes())
    with pytest.raises(InvalidArgumentError, match="mmr"):
        vector_store.query(
            VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], mode=VectorStoreQueryMode.MMR)
        )
    with pytest.raises(InvalidArgumentError, match="node_ids"):
        vector_store.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], node_ids=["x"]))


def test_query_restricted_to_doc_ids(vector_store: KeelDBVectorStore) -> None:
    vector_store.add(_nodes())
    query = VectorStoreQuery(
        query_embedding=[1.0, 0.0, 0.0], similarity_top_k=5, doc_ids=["doc-2", "doc-3"]
    )
    assert sorted(vector_store.query(query).ids or []) == ["0b31ae71", "c3ew11cd"]


class HashEmbedding(BaseEmbedding):
    """A deterministic bag-of-words embedding (hashed words, 64 dims): texts sharing words
    are close. No model, no network."""

    def _vec(self, text: str) -> list[float]:
        v = np.zeros(64, dtype=np.float64)
        for word in re.findall(r"[a-z]+", text.lower()):
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        n = float(np.linalg.norm(v))
        return (v / n).tolist() if n else [1.0] + [0.0] * 63

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vec(text)


DOCS = [
    Document(
        text="Aspirin reduces the risk of heart attack in adults.",
        doc_id="med-1",
        metadata={"topic": "medicine"},
    ),
    Document(
        text="Photosynthesis converts sunlight into chemical energy in plants.",
        doc_id="bio-1",
        metadata={"topic": "biology"},
    ),
    Document(
        text="The mitochondria is the powerhouse of the cell.",
        doc_id="bio-2",
        metadata={"topic": "biology"},
    ),
]


async def test_vector_store_index_end_to_end(vector_store: KeelDBVectorStore) -> None:
    """Build a VectorStoreIndex on the store and retrieve through it: vector, filtered,
    text and hybrid retrieval, async retrieval, and deleting a source document."""
    embed = HashEmbedding()
    index = VectorStoreIndex.from_documents(
        DOCS,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=embed,
    )
    hits = index.as_retriever(similarity_top_k=1).retrieve("sunlight energy in plants")
    assert hits[0].node.ref_doc_id == "bio-1"
    assert "Photosynthesis" in hits[0].node.get_content()
    flt = MetadataFilters(filters=[_f("topic", "biology", "==")])
    hits = index.as_retriever(similarity_top_k=5, filters=flt).retrieve("heart attack")
    assert {h.node.ref_doc_id for h in hits} == {"bio-1", "bio-2"}
    hits = index.as_retriever(vector_store_query_mode="text_search", similarity_top_k=2).retrieve(
        "mitochondria"
    )
    assert [h.node.ref_doc_id for h in hits] == ["bio-2"]
    hits = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=1, alpha=0.5
    ).retrieve("aspirin heart")
    assert hits[0].node.ref_doc_id == "med-1"
    hits = await index.as_retriever(similarity_top_k=1).aretrieve("powerhouse of the cell")
    assert hits[0].node.ref_doc_id == "bio-2"
    index.delete_ref_doc("bio-2")
    hits = index.as_retriever(similarity_top_k=3).retrieve("powerhouse of the cell")
    assert "bio-2" not in {h.node.ref_doc_id for h in hits}
