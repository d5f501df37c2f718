"""LangChain vector store on KeelDB: ``KeelDBVectorStore`` (``pip install 'keeldb[langchain]'``).

::

    from keeldb.integrations.langchain import KeelDBVectorStore

    store = KeelDBVectorStore(embeddings, path="./data")                 # embedded
    store = KeelDBVectorStore(embeddings, url="http://127.0.0.1:8321")   # a server
    store.add_texts(["..."], metadatas=[{"year": 2024}])
    store.similarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    store.hybrid_search("query", k=4)                    # dense + BM25, fused
    store.as_retriever(search_type="hybrid", search_kwargs={"k": 4, "filter": {...}})

Each LangChain ``Document`` is one record: ``Document.id`` is the record id,
``page_content`` the record's document (indexed for full-text search) and ``metadata``
its JSON metadata. ``filter=`` takes KeelDB's filter language (``docs/filtering.md``)
unchanged. Scores: ``similarity_search_with_score`` returns KeelDB distances (smaller =
closer); ``similarity_search_with_relevance_scores`` maps them to [0, 1] with
:func:`keeldb.integrations.backend.relevance_score`; text and hybrid searches return
their BM25 / fused scores (larger = better). See ``docs/integrations.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "keeldb.integrations.langchain needs langchain-core: pip install 'keeldb[langchain]'"
    ) from exc

from keeldb.errors import InvalidArgumentError
from keeldb.integrations.backend import DEFAULT_BATCH_SIZE, CollectionBackend, relevance_score
from keeldb.types import Hit, Record

__all__ = ["KeelDBRetriever", "KeelDBVectorStore"]


def _to_document(id_: str, document: str | None, metadata: dict[str, Any] | None) -> Document:
    return Document(id=id_, page_content=document or "", metadata=dict(metadata or {}))


def _hit_documents(hits: list[Hit]) -> list[tuple[Document, float]]:
    return [(_to_document(h.id, h.document, h.metadata), float(h.distance)) for h in hits]


def _scored_documents(hits: list[Hit]) -> list[tuple[Document, float]]:
    return [(_to_document(h.id, h.document, h.metadata), float(h.score or 0.0)) for h in hits]


def _record_documents(records: Iterable[Record | None]) -> list[Document]:
    return [_to_document(r.id, r.document, r.metadata) for r in records if r is not None]


class KeelDBVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over one KeelDB collection, embedded or remote.

    ``embedding``: the LangChain ``Embeddings`` used for texts and queries. Where the
    data is — exactly one of: ``path`` (an embedded database directory, opened here and
    closed by :meth:`close`), ``client`` (an open :class:`keeldb.Database`, or a
    :class:`keeldb.Client`), ``url`` (+ ``api_key``: a server; this store makes the
    Client and, for the ``a*`` methods, an AsyncClient), or ``async_client`` (a
    :class:`keeldb.AsyncClient`, also allowed beside a ``Client``). The ``a*`` methods
    are native asyncio when an AsyncClient is available (``url`` or ``async_client``);
    otherwise they run the blocking call in a thread.

    ``collection_name`` / ``workspace``: the collection, created at the first write with
    the embeddings' dimension, ``metric`` (``cosine``, ``l2``, ``ip``) and
    ``collection_params`` (``m``, ``ef_construction``, ``ef_search``). An existing
    collection is used as it is. ``batch_size``: records per write request.

    Raises :class:`~keeldb.errors.InvalidArgumentError` for a bad combination of
    arguments; KeelDB's typed errors otherwise (``DimensionMismatchError`` when the
    embeddings do not fit an existing collection, ``InvalidArgumentError`` for metadata
    that is not JSON or a bad filter).
    """

    def __init__(
        self,
        embedding: Embeddings,
        *,
        path: str | None = None,
        client: Any = None,
        async_client: Any = None,
        url: str | None = None,
        api_key: str | None = None,
        collection_name: str = "langchain",
        workspace: str = "default",
        metric: str = "cosine",
        collection_params: dict[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.embedding = embedding
        self.backend = CollectionBackend(
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

    @property
    def client(self) -> Any:
        """The sync handle: the :class:`keeldb.Database` or :class:`keeldb.Client` (None
        with only an AsyncClient)."""
        return self.backend.client

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings this store was made with."""
        return self.embedding

    # --- writing ----------------------------------------------------------------------------

    @staticmethod
    def _prepare(
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        text_list = list(texts)
        if metadatas is not None and len(metadatas) != len(text_list):
            raise InvalidArgumentError(
                f"{len(metadatas)} metadatas for {len(text_list)} texts: give one per text"
            )
        if ids is not None and len(ids) != len(text_list):
            raise InvalidArgumentError(f"{len(ids)} ids for {len(text_list)} texts")
        id_list = [i if i else str(uuid.uuid4()) for i in (ids or [None] * len(text_list))]
        metas = [dict(m or {}) for m in (metadatas or [{}] * len(text_list))]
        return text_list, metas, id_list

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed ``texts`` and upsert them; returns their ids (``ids[i]``, or a new
        UUID where an id is missing). Re-adding an id replaces that record."""
        text_list, metas, id_list = self._prepare(texts, metadatas, ids)
        if not text_list:
            return []
        vectors = self.embedding.embed_documents(text_list)
        self.backend.upsert(id_list, vectors, metas, text_list)
        return id_list

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """:meth:`add_texts` for async code."""
        text_list, metas, id_list = self._prepare(texts, metadatas, ids)
        if not text_list:
            return []
        vectors = await self.embedding.aembed_documents(text_list)
        await self.backend.aupsert(id_list, vectors, metas, text_list)
        return id_list

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert ``documents``: ids from ``ids=`` if given, else each ``Document.id``,
        else a new UUID. The documents are not modified."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        texts = [d.page_content for d in documents]
        return self.add_texts(texts, [d.metadata for d in documents], ids=ids, **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """:meth:`add_documents` for async code."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        texts = [d.page_content for d in documents]
        return await self.aadd_texts(texts, [d.metadata for d in documents], ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete ``ids`` (unknown ids are ignored), or with ``filter=`` every record
        matching it; with neither, every record of the collection (LangChain's contract
        for ``ids=None``). Returns True."""
        flt = kwargs.get("filter")
        if ids is None:
            self.backend.delete(filter=flt if flt is not None else {})
        elif ids:
            self.backend.delete(ids)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """:meth:`delete` for async code."""
        flt = kwargs.get("filter")
        if ids is None:
            await self.backend.adelete(filter=flt if flt is not None else {})
        elif ids:
            await self.backend.adelete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents among ``ids`` that exist, in the order of ``ids``."""
        return _record_documents(self.backend.get(list(ids)))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """:meth:`get_by_ids` for async code."""
        return _record_documents(await self.backend.aget(list(ids)))

    # --- vector search ----------------------------------------------------------------------

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to ``embedding`` (matching ``filter``) with their
        KeelDB distances, closest first."""
        return _hit_documents(self.backend.search(embedding, k, filter))

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score_by_vector` for async code."""
        return _hit_documents(await self.backend.asearch(embedding, k, filter))

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to ``query``'s embedding with their KeelDB
        distances (smaller = closer; cosine: 1 - cos, l2: Euclidean, ip: -dot)."""
        vector = self.embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score` for async code."""
        vector = await self.embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to ``query`` (matching ``filter``), closest first."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """:meth:`similarity_search` for async code."""
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to ``embedding`` (matching ``filter``)."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """:meth:`similarity_search_by_vector` for async code."""
        hits = await self.asimilarity_search_with_score_by_vector(embedding, k, filter)
        return [d for d, _ in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance → relevance in [0, 1] for this store's metric (``relevance_score``)."""
        metric = self.backend.metric
        return lambda distance: relevance_score(metric, distance)

    # --- maximal marginal relevance ---------------------------------------------------------

    def _mmr(
        self,
        query: list[float],
        hits: list[Hit],
        records: list[Record | None],
        k: int,
        lambda_mult: float,
    ) -> list[Document]:
        pairs = [(h, r) for h, r in zip(hits, records, strict=True) if r is not None]
        if not pairs:
            return []
        vectors = np.stack([r.vector for _, r in pairs]).astype(np.float32)
        q = np.asarray(query, dtype=np.float32)
        if self.backend.metric == "cosine":
            q = q / (np.linalg.norm(q) or 1.0)  # stored cosine vectors are unit length
        chosen = maximal_marginal_relevance(q, vectors.tolist(), lambda_mult=lambda_mult, k=k)
        return [
            _to_document(pairs[i][0].id, pairs[i][0].document, pairs[i][0].metadata) for i in chosen
        ]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents chosen by maximal marginal relevance among the ``fetch_k``
        nearest to ``embedding`` (matching ``filter``): ``lambda_mult`` 1 = pure
        similarity, 0 = maximum diversity."""
        hits = self.backend.search(embedding, max(fetch_k, k), filter)
        records = self.backend.get([h.id for h in hits])
        return self._mmr(embedding, hits, records, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector` for async code."""
        hits = await self.backend.asearch(embedding, max(fetch_k, k), filter)
        records = await self.backend.aget([h.id for h in hits])
        return self._mmr(embedding, hits, records, k, lambda_mult)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector` for ``query``'s embedding."""
        vector = self.embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, filter)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` for async code."""
        vector = await self.embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter
        )

    # --- full-text and hybrid search --------------------------------------------------------

    def text_search_with_score(
        self, query: str, k: int = 4, filter: Any = None
    ) -> list[tuple[Document, float]]:
        """BM25 full-text search over the documents' text: the ``k`` best matches
        (matching ``filter``) with their BM25 scores, best first. Only documents that
        contain a query term are returned."""
        return _scored_documents(self.backend.text_search(query, k, filter))

    async def atext_search_with_score(
        self, query: str, k: int = 4, filter: Any = None
    ) -> list[tuple[Document, float]]:
        """:meth:`text_search_with_score` for async code."""
        return _scored_documents(await self.backend.atext_search(query, k, filter))

    def text_search(self, query: str, k: int = 4, filter: Any = None) -> list[Document]:
        """:meth:`text_search_with_score` without the scores."""
        return [d for d, _ in self.text_search_with_score(query, k, filter)]

    async def atext_search(self, query: str, k: int = 4, filter: Any = None) -> list[Document]:
        """:meth:`text_search` for async code."""
        return [d for d, _ in await self.atext_search_with_score(query, k, filter)]

    def hybrid_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **fusion: Any
    ) -> list[tuple[Document, float]]:
        """Dense and BM25 search for ``query`` fused into one ranking
        (``Collection.hybrid_search``: ``fusion="rrf"`` (default) or ``"weighted"``,
        ``rrf_k=``, ``weights=(dense, text)``), with the fused scores, best first."""
        vector = self.embedding.embed_query(query)
        return _scored_documents(self.backend.hybrid_search(query, vector, k, filter, **fusion))

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **fusion: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`hybrid_search_with_score` for async code."""
        vector = await self.embedding.aembed_query(query)
        hits = await self.backend.ahybrid_search(query, vector, k, filter, **fusion)
        return _scored_documents(hits)

    def hybrid_search(
        self, query: str, k: int = 4, filter: Any = None, **fusion: Any
    ) -> list[Document]:
        """:meth:`hybrid_search_with_score` without the scores."""
        return [d for d, _ in self.hybrid_search_with_score(query, k, filter, **fusion)]

    async def ahybrid_search(
        self, query: str, k: int = 4, filter: Any = None, **fusion: Any
    ) -> list[Document]:
        """:meth:`hybrid_search` for async code."""
        return [d for d, _ in await self.ahybrid_search_with_score(query, k, filter, **fusion)]

    # --- construction, retrievers, lifetime -------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> KeelDBVectorStore:
        """A store made with ``KeelDBVectorStore(embedding, **kwargs)``, with ``texts``
        added."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> KeelDBVectorStore:
        """:meth:`from_texts` for async code."""
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    def as_retriever(self, **kwargs: Any) -> KeelDBRetriever:
        """A retriever over this store: ``search_type`` ``"similarity"`` (default),
        ``"similarity_score_threshold"`` (``search_kwargs["score_threshold"]`` in [0, 1]),
        ``"mmr"`` (``fetch_k``, ``lambda_mult``), ``"hybrid"`` (fusion arguments as
        :meth:`hybrid_search`) or ``"text"`` (BM25); ``search_kwargs`` may hold ``k``
        and ``filter``."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return KeelDBRetriever(vectorstore=self, tags=tags, **kwargs)

    def drop(self) -> None:
        """Drop the collection with everything in it (created again by the next write)."""
        self.backend.drop()

    def close(self) -> None:
        """Close what this store opened (the database of ``path=``, the client of
        ``url=``); a database or client passed in stays open."""
        self.backend.close()

    async def aclose(self) -> None:
        """:meth:`close`, also closing the AsyncClient this store made from ``url=``."""
        await self.backend.aclose()


class KeelDBRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` with KeelDB's two extra search types, ``"hybrid"``
    (:meth:`KeelDBVectorStore.hybrid_search`) and ``"text"``
    (:meth:`KeelDBVectorStore.text_search`); the standard types behave as in LangChain."""

    vectorstore: KeelDBVectorStore
    allowed_search_types: ClassVar[Sequence[str]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
        "text",
    )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kwargs_ = self.search_kwargs | kwargs
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **kwargs_)
        if self.search_type == "text":
            return self.vectorstore.text_search(query, **kwargs_)
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kwargs_ = self.search_kwargs | kwargs
        if self.search_type == "hybrid":
            return await self.vectorstore.ahybrid_search(query, **kwargs_)
        if self.search_type == "text":
            return await self.vectorstore.atext_search(query, **kwargs_)
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
