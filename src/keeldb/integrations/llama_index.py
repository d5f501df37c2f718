"""LlamaIndex vector store on KeelDB: ``KeelDBVectorStore`` (``pip install 'keeldb[llama-index]'``).

::

    from llama_index.core import StorageContext, VectorStoreIndex
    from keeldb.integrations.llama_index import KeelDBVectorStore

    store = KeelDBVectorStore(path="./data")                   # or url="http://127.0.0.1:8321"
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store)
    )
    index.as_retriever(similarity_top_k=5).retrieve("question")
    index.as_retriever(vector_store_query_mode="hybrid", alpha=0.5).retrieve("question")

Each node is one record: the node id is the record id, the node's embedding its vector,
its text (``MetadataMode.NONE``) the record's document, indexed for full-text search,
and ``node_to_metadata_dict(node, remove_text=True)`` its metadata (the node's own
metadata keys at the top level, filterable, plus ``_node_content``, ``_node_type``,
``doc_id``, ``document_id``, ``ref_doc_id``). Query modes: ``DEFAULT`` (vector search; a
query without an embedding returns the first ``similarity_top_k`` records matching the
filters), ``TEXT_SEARCH`` (BM25 on the query string) and ``HYBRID`` (both fused;
``alpha`` = weight of the dense side, ``1 - alpha`` of BM25). ``MetadataFilters`` are
translated by :mod:`keeldb.integrations.llama_filters`. See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "keeldb.integrations.llama_index needs llama-index-core: pip install 'keeldb[llama-index]'"
    ) from exc

from keeldb.errors import InvalidArgumentError
from keeldb.integrations.backend import DEFAULT_BATCH_SIZE, CollectionBackend
from keeldb.integrations.llama_filters import to_keeldb_filter
from keeldb.types import Hit, Record

__all__ = ["KeelDBVectorStore"]

_MODES = (
    VectorStoreQueryMode.DEFAULT,
    VectorStoreQueryMode.TEXT_SEARCH,
    VectorStoreQueryMode.HYBRID,
)


def _to_node(id_: str, document: str | None, metadata: dict[str, Any] | None) -> BaseNode:
    """Rebuild a node from a record (a record written outside LlamaIndex becomes a
    ``TextNode`` with the record's metadata)."""
    meta = metadata or {}
    if "_node_content" in meta:
        return metadata_dict_to_node(meta, text=document)
    return TextNode(id_=id_, text=document or "", metadata=dict(meta))


class _Plan:
    """What one ``VectorStoreQuery`` asks KeelDB for (shared by query and aquery)."""

    def __init__(self, query: VectorStoreQuery, fusion: str) -> None:
        if query.node_ids:
            raise InvalidArgumentError(
                "VectorStoreQuery.node_ids is not supported: use get_nodes(node_ids=...)"
            )
        mode = VectorStoreQueryMode(query.mode)
        if mode not in _MODES:
            raise InvalidArgumentError(
                f"query mode {mode.value!r} is not supported by KeelDB: use "
                "'default', 'text_search' or 'hybrid'"
            )
        flt = to_keeldb_filter(query.filters)
        if query.doc_ids:
            doc_flt = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            flt = doc_flt if flt is None else {"$and": [flt, doc_flt]}
        self.filter = flt
        self.vector = query.query_embedding
        self.text = query.query_str
        self.fusion: dict[str, Any] = {"fusion": fusion}
        if mode == VectorStoreQueryMode.DEFAULT:
            self.kind = "search" if self.vector is not None else "scan"
            self.k = query.similarity_top_k
        elif mode == VectorStoreQueryMode.TEXT_SEARCH:
            self.kind = "text"
            self.k = query.sparse_top_k or query.similarity_top_k
        else:
            self.kind = "hybrid"
            self.k = query.hybrid_top_k or query.similarity_top_k
            if self.vector is None:
                raise InvalidArgumentError("a hybrid query needs query_embedding")
            if query.alpha is not None:
                if not 0.0 <= query.alpha <= 1.0:
                    raise InvalidArgumentError(f"alpha must be in [0, 1], got {query.alpha}")
                self.fusion["weights"] = (query.alpha, 1.0 - query.alpha)
        if self.kind in ("text", "hybrid") and not self.text:
            raise InvalidArgumentError(f"a {mode.value} query needs query_str")


class KeelDBVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over one KeelDB collection, embedded or remote.

    Where the data is — exactly one of: ``path`` (an embedded database directory, opened
    here, closed by :meth:`close`), ``client`` (an open :class:`keeldb.Database` or a
    :class:`keeldb.Client`), ``url`` (+ ``api_key``: a server; sync calls through a
    Client, async ones through an AsyncClient made here), or ``async_client`` (a
    :class:`keeldb.AsyncClient`, also allowed beside a ``Client``). The async methods
    (``async_add``, ``aquery``, ``adelete``, ``adelete_nodes``, ``aget_nodes``,
    ``aclear``) are native asyncio with an AsyncClient, otherwise the blocking call in a
    thread.

    ``collection_name`` / ``workspace``: the collection, created at the first ``add``
    with the nodes' embedding size, ``metric`` and ``collection_params`` (``m``,
    ``ef_construction``, ``ef_search``). ``hybrid_fusion``: ``"rrf"`` (default) or
    ``"weighted"`` for HYBRID queries. Similarities: cosine similarity (``1 -
    distance``) under ``cosine``, the dot product under ``ip``, ``1 / (1 + distance)``
    under ``l2``; BM25 scores for TEXT_SEARCH; fused scores for HYBRID.
    """

    stores_text: bool = True
    collection_name: str = "llama_index"
    workspace: str = "default"
    metric: str = "cosine"
    hybrid_fusion: str = "rrf"
    batch_size: int = DEFAULT_BATCH_SIZE

    _backend: CollectionBackend = PrivateAttr()

    def __init__(
        self,
        *,
        path: str | None = None,
        client: Any = None,
        async_client: Any = None,
        url: str | None = None,
        api_key: str | None = None,
        collection_name: str = "llama_index",
        workspace: str = "default",
        metric: str = "cosine",
        collection_params: dict[str, Any] | None = None,
        hybrid_fusion: str = "rrf",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if hybrid_fusion not in ("rrf", "weighted"):
            raise InvalidArgumentError(f"hybrid_fusion must be rrf or weighted: {hybrid_fusion!r}")
        super().__init__(  # type: ignore[call-arg]  # pydantic fields declared above
            collection_name=collection_name,
            workspace=workspace,
            metric=metric,
            hybrid_fusion=hybrid_fusion,
            batch_size=batch_size,
        )
        self._backend = CollectionBackend(
            collection_name=collection_name,
            path=path,
            client=client,
            async_client=async_client,
            url=url,
            api_key=api_key,
            workspace=workspace,
            metric=metric,
            collection_params=collection_params,
            batch_size=batch_size,
        )

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialisation name."""
        return "KeelDBVectorStore"

    @property
    def client(self) -> Any:
        """The sync handle: the :class:`keeldb.Database` or :class:`keeldb.Client`."""
        return self._backend.client

    @property
    def backend(self) -> CollectionBackend:
        """The collection backend (embedded or remote) this store writes to."""
        return self._backend

    # --- writing ----------------------------------------------------------------------------

    @staticmethod
    def _records(
        nodes: Sequence[BaseNode],
    ) -> tuple[list[str], list[list[float]], list[dict[str, Any]], list[str]]:
        ids = [n.node_id for n in nodes]
        vectors = [n.get_embedding() for n in nodes]  # ValueError when a node has none
        metadata = [node_to_metadata_dict(n, remove_text=True, flat_metadata=False) for n in nodes]
        documents = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        return ids, vectors, metadata, documents

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert ``nodes`` (each needs an embedding); returns their ids. Creates the
        collection from the first node's embedding size when missing."""
        ids, vectors, metadata, documents = self._records(nodes)
        self._backend.upsert(ids, vectors, metadata, documents)
        return ids

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """:meth:`add` for async code."""
        ids, vectors, metadata, documents = self._records(nodes)
        await self._backend.aupsert(ids, vectors, metadata, documents)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._backend.delete(filter={"ref_doc_id": ref_doc_id})

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """:meth:`delete` for async code."""
        await self._backend.adelete(filter={"ref_doc_id": ref_doc_id})

    @staticmethod
    def _selection(
        node_ids: list[str] | None, filters: MetadataFilters | None
    ) -> tuple[list[str] | None, dict[str, Any] | None]:
        return (list(node_ids) if node_ids is not None else None), to_keeldb_filter(filters)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes in ``node_ids`` and/or matching ``filters`` (both: those in
        ``node_ids`` that match); neither deletes nothing."""
        ids, flt = self._selection(node_ids, filters)
        if ids is not None and flt is not None:
            wanted = set(ids)
            ids = [r.id for r in self._backend.scan(flt) if r.id in wanted]
        if ids is not None:
            if ids:
                self._backend.delete(ids)
        elif flt is not None:
            self._backend.delete(filter=flt)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """:meth:`delete_nodes` for async code."""
        ids, flt = self._selection(node_ids, filters)
        if ids is not None and flt is not None:
            wanted = set(ids)
            ids = [r.id for r in await self._backend.ascan(flt) if r.id in wanted]
        if ids is not None:
            if ids:
                await self._backend.adelete(ids)
        elif flt is not None:
            await self._backend.adelete(filter=flt)

    def clear(self) -> None:
        """Delete every node (the collection and its parameters stay)."""
        self._backend.delete(filter={})

    async def aclear(self) -> None:
        """:meth:`clear` for async code."""
        await self._backend.adelete(filter={})

    # --- reading ----------------------------------------------------------------------------

    @staticmethod
    def _nodes_of(records: Sequence[Record | None], ids: list[str] | None) -> list[BaseNode]:
        found = [r for r in records if r is not None]
        if ids is not None:
            wanted = set(ids)
            found = [r for r in found if r.id in wanted]
        return [_to_node(r.id, r.document, r.metadata) for r in found]

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The nodes in ``node_ids`` (in that order, missing ones left out) and/or
        matching ``filters``; neither: every node, in id order."""
        ids, flt = self._selection(node_ids, filters)
        if ids is not None and flt is None:
            return self._nodes_of(self._backend.get(ids), None)
        return self._nodes_of(self._backend.scan(flt), ids)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """:meth:`get_nodes` for async code."""
        ids, flt = self._selection(node_ids, filters)
        if ids is not None and flt is None:
            return self._nodes_of(await self._backend.aget(ids), None)
        return self._nodes_of(await self._backend.ascan(flt), ids)

    def _similarity(self, hit: Hit) -> float:
        if hit.score is not None:
            return float(hit.score)
        if self.metric == "cosine":
            return 1.0 - float(hit.distance)
        if self.metric == "ip":
            return -float(hit.distance)
        return 1.0 / (1.0 + float(hit.distance))

    def _result(self, hits: Sequence[Hit]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(
            nodes=[_to_node(h.id, h.document, h.metadata) for h in hits],
            similarities=[self._similarity(h) for h in hits],
            ids=[h.id for h in hits],
        )

    @staticmethod
    def _scan_result(records: Sequence[Record]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(
            nodes=[_to_node(r.id, r.document, r.metadata) for r in records],
            similarities=[1.0] * len(records),
            ids=[r.id for r in records],
        )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Answer ``query`` in its mode (DEFAULT, TEXT_SEARCH, HYBRID; others raise
        ``InvalidArgumentError``), restricted to its ``filters`` and ``doc_ids``."""
        plan = _Plan(query, self.hybrid_fusion)
        b = self._backend
        if plan.kind == "scan":
            return self._scan_result(b.scan(plan.filter, limit=plan.k))
        if plan.kind == "search":
            return self._result(b.search(plan.vector, plan.k, plan.filter))
        if plan.kind == "text":
            return self._result(b.text_search(plan.text or "", plan.k, plan.filter))
        hits = b.hybrid_search(plan.text or "", plan.vector, plan.k, plan.filter, **plan.fusion)
        return self._result(hits)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """:meth:`query` for async code."""
        plan = _Plan(query, self.hybrid_fusion)
        b = self._backend
        if plan.kind == "scan":
            return self._scan_result(await b.ascan(plan.filter, limit=plan.k))
        if plan.kind == "search":
            return self._result(await b.asearch(plan.vector, plan.k, plan.filter))
        if plan.kind == "text":
            return self._result(await b.atext_search(plan.text or "", plan.k, plan.filter))
        hits = await b.ahybrid_search(
            plan.text or "", plan.vector, plan.k, plan.filter, **plan.fusion
        )
        return self._result(hits)

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this store opened (the database of ``path=``, the client of
        ``url=``); a database or client passed in stays open."""
        self._backend.close()

    async def aclose(self) -> None:
        """:meth:`close`, also closing the AsyncClient this store made from ``url=``."""
        await self._backend.aclose()
