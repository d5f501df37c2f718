"""A collection: the public API over one directory's WAL, memtables and segments.

The collection validates arguments and hands each call to the module that owns it: the
write path and memtable supply (:mod:`keeldb.engine.writer`), vector search
(:mod:`keeldb.engine.search`), full-text and hybrid search
(:mod:`keeldb.engine.text_search`, :mod:`keeldb.engine.hybrid`), paging
(:mod:`keeldb.engine.scan`), statistics (:mod:`keeldb.engine.stats`). Its state (the
current :class:`State`, the WAL, the manifest) belongs to its
:class:`~keeldb.engine.versions.VersionSet`. Sealing and merging run in the background
(:mod:`keeldb.engine.maintenance`); opening and replay are :mod:`keeldb.engine.recovery`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from keeldb.engine.derived_kinds import indexes_for
from keeldb.engine.embedder import CollectionEmbedding, is_text_batch, is_text_query
from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.scan import records_by_id, scan_page
from keeldb.engine.search import run_search
from keeldb.engine.state import Options, State
from keeldb.engine.stats import collection_info, collection_stats
from keeldb.engine.text_index import analyzer_of
from keeldb.engine.validation import (
    check_k,
    validate_ids,
    validate_query,
)
from keeldb.engine.writer import WritePath
from keeldb.errors import ClosedError, InvalidArgumentError, KeelError, StorageError
from keeldb.storage.records import Batch, DeleteOp
from keeldb.types import (
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    InsertStats,
    Page,
    Record,
    SearchStats,
)

if TYPE_CHECKING:
    from keeldb.embeddings.base import EmbeddingFunction
    from keeldb.engine.maintenance import Maintainer
    from keeldb.engine.transaction import Transaction
    from keeldb.engine.versions import VersionSet

log = logging.getLogger("keeldb")

__all__ = ["Collection"]


class Collection:
    """A named set of vectors with string ids and JSON metadata. Thread-safe.

    Obtain one from :meth:`keeldb.Database.create_collection` or ``get_collection``;
    it stays usable until the database is closed or the collection dropped
    (:class:`ClosedError` afterwards).
    """

    def __init__(self, directory: str, options: Options, versions: VersionSet) -> None:
        """Built by :func:`keeldb.engine.recovery.open_collection` (the factory), which
        replays the WAL through :meth:`replay` and then calls :meth:`start`."""
        self.directory = directory
        self.config = versions.config
        self.options = options
        self.fs = options.fs
        self.versions = versions
        self.derived = indexes_for(self.config)  # derived indexes (engine/derived.py)
        self.analyzer = analyzer_of(self.config)  # the full-text analyser
        self.embedder = CollectionEmbedding(self.config)  # engine/embedder.py
        self._closed = False
        self._damaged: KeelError | None = None  # set by the scrubber on bad payloads
        self._search_callbacks: list[Callable[[SearchStats], None]] = []
        self._insert_callbacks: list[Callable[[InsertStats], None]] = []
        self._maintainer: Maintainer | None = None
        self.recovery_report: dict[str, Any] = {}
        self.writes = WritePath(self)  # the write path and memtable supply

    @property
    def _state(self) -> State:
        return self.versions.state

    # --- lifecycle (called by recovery, the factory) ----------------------------------------

    def start(self, maintainer: Maintainer) -> None:
        """Start logging and upkeep after replay: a new WAL file, the maintenance worker,
        and removal of files no manifest names (a seal or merge cut short)."""
        self.versions.open_wal()
        self._maintainer = maintainer
        with maintainer.lock:  # the worker may start a seal: not before this cleanup
            self.versions.remove_obsolete(at_open=True)
        if self._state.active.n >= self.options.memtable_rows:
            with self.versions.locked():
                self.writes.freeze()

    @contextmanager
    def pinned_files(self) -> Iterator[list[tuple[str, int | None]]]:
        """Hold upkeep (no seal, merge or checkpoint commits, so no file is removed or
        replaced) and yield the files of a consistent copy (see
        :meth:`VersionSet.snapshot`). Writes go on meanwhile; a merge in progress is
        waited for."""
        self._check_open()
        maintainer = self._maintainer
        assert maintainer is not None
        with maintainer.merge_lock, maintainer.lock:
            _manifest, files = self.versions.snapshot()
            yield files

    def mark_damaged(self, exc: KeelError) -> None:
        """Refuse every further call with ``exc`` (damaged data found after open): never
        answer from data that failed verification."""
        self._damaged = exc

    # --- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def workspace(self) -> str:
        return self.config.workspace

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> str:
        return self.config.metric

    @property
    def embedding_name(self) -> str | None:
        """The name of the collection's embedding function (None without one)."""
        return self.embedder.name

    @property
    def embedding_function(self) -> EmbeddingFunction | None:
        """The collection's embedding function (None without one), re-created from the
        manifest on first use: EmbeddingFunctionError when it cannot be (unknown name,
        dependency not installed), naming the function and how to install it."""
        if self.embedder.spec is None:
            return None
        return self.embedder.function()

    def __repr__(self) -> str:
        return f"<Collection {self.workspace}/{self.name} dim={self.dim} metric={self.metric}>"

    def info(self) -> CollectionInfo:
        """Name, workspace, parameters, live count, current index type, embedding
        function name and analyser configuration."""
        return collection_info(self)

    # --- guards -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.workspace}/{self.name} is closed")
        if self._damaged is not None:
            raise self._damaged

    def _check_writable(self) -> None:
        self._check_open()
        failed = self.versions.failed
        if failed is not None:
            raise StorageError(
                f"collection {self.workspace}/{self.name} refuses writes after a storage "
                f"failure ({failed}); reopen the database"
            )

    # --- writes -------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """Insert records, or replace those whose id exists (all or nothing).

        ``vectors`` is (n, dim) array-like, or None when the collection has an embedding
        function: the vectors are then computed from ``documents`` (every record needs a
        str document; batched, with a progress bar on a terminal for long runs) before
        anything is written. ``metadata`` a list aligned with ids (or None).
        For an existing id, metadata ``None`` keeps its old metadata and ``{}`` clears it.
        ``documents`` (a list of str or None aligned with ids, or None) are the records'
        texts, stored durably and indexed for :meth:`text_search`; like metadata, None
        (the whole argument or an entry) keeps an existing record's document.
        The whole batch is validated first (ids, dimensions, finite values, zero vectors
        under cosine, JSON metadata): on error nothing is written. Returns once the batch
        is durable per the database's durability mode.
        """
        op = self.writes.upsert_op(ids, vectors, metadata, documents)
        if not op.ids:  # an empty batch is a no-op: no WAL record (issue 17)
            self._check_writable()
            return
        self._write([op])

    def delete(self, ids: Sequence[str] | None = None, *, filter: Any = None) -> int:
        """Delete records by ``ids`` or by ``filter`` (exactly one); returns how many
        existed. Deletes by filter are logged as the resolved ids."""
        if (ids is None) == (filter is None):
            raise InvalidArgumentError("delete takes exactly one of ids or filter")
        if ids is not None:
            id_list = validate_ids(ids, unique=False)
            if not id_list:  # an empty batch is a no-op: no WAL record (issue 17)
                self._check_writable()
                return 0
            return self._write([DeleteOp(list(dict.fromkeys(id_list)))])["deleted"]
        return self.writes.delete_matching(compile_keyed(filter))

    def update(
        self,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]],
        *,
        mode: str = "merge",
    ) -> list[str]:
        """Change the metadata of existing records, keeping their vectors (all or nothing).

        ``mode="merge"`` (default, as Chroma's ``update``): each given key is set, and a
        key given as None is removed; other keys are kept. ``mode="replace"``: the record's
        metadata becomes exactly the given dict. Ids that do not exist are not created:
        they are returned (the others are updated). Durable per the durability mode.
        """
        return self.writes.update_metadata(ids, metadata, mode)

    def transaction(self) -> Transaction:
        """A context manager staging upserts and deletes, applied all or nothing on exit
        (one WAL record); an exception inside the block discards everything."""
        from keeldb.engine.transaction import Transaction

        self._check_writable()
        return Transaction(self)

    def _write(self, batch: Batch, *, locked: bool = False) -> dict[str, int]:
        """Log, apply and acknowledge a validated batch (:meth:`WritePath.write`)."""
        return self.writes.write(batch, locked=locked)

    # --- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records for ``ids`` (None where absent), aligned with ``ids``. Vectors and
        metadata are copies."""
        self._check_open()
        return records_by_id(self, validate_ids(ids, unique=False))

    def count(self, filter: Any = None) -> int:
        """Live records (matching ``filter`` when given)."""
        self._check_open()
        state = self._state
        if filter is None:
            return sum(m.live_count for m in state.memtables) + sum(
                s.live_count for s in state.segments
            )
        flt = compile_keyed(filter)
        return sum(unit.live_matching(flt).count for unit in state.units())

    def search(
        self,
        vector: Any | str,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """The ``k`` nearest live records to ``vector`` (matching ``filter``), closest
        first. Fewer than k only when fewer than k records (match).

        ``vector`` may be a string when the collection has an embedding function: it is
        embedded first (EmbeddingFunctionError without a usable function).

        ``exact=True`` compares the query with every live (matching) record instead of
        walking HNSW graphs: recall 1.0, at a cost linear in the rows searched; ``ef``
        must then be None.

        ``with_metadata=False`` leaves each hit's metadata as None instead of decoding a
        fresh dict for it (ids and distances only, like a raw index; the hits are the
        same). Decoding is most of the per-hit cost of a large batch.
        ``with_documents=False`` leaves each hit's document as None (otherwise the
        record's document, None when it has none).
        """
        self._check_open()
        check_k(k, ef, exact, with_metadata, with_documents)
        if is_text_query(vector):
            vector = self.embedder.embed_queries([vector])[0]
        queries = validate_query(vector, self.dim, self.metric, single=True)
        return run_search(self, queries, k, ef, filter, exact, with_metadata, with_documents)[0]

    def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` (q, dim), in one call; ``vectors``
        may be a list of strings when the collection has an embedding function (embedded
        in one call first)."""
        self._check_open()
        check_k(k, ef, exact, with_metadata, with_documents)
        if is_text_batch(vectors):
            vectors = self.embedder.embed_queries(vectors)
        queries = validate_query(vectors, self.dim, self.metric, single=False)
        if len(queries) == 0:
            return []
        return run_search(self, queries, k, ef, filter, exact, with_metadata, with_documents)

    def text_search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Any = None,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """The ``k`` live records whose documents best match ``query`` by BM25 (among
        those matching ``filter``), best first.

        Each hit has ``score`` (BM25, larger = better) and ``distance = -score``. The
        query is analysed like the documents (the collection's analyser); statistics
        (document count, average length, document frequencies) cover every live document
        of the collection, whatever the filter. Only documents containing a query term
        are returned, so fewer than k hits means fewer match. A document is found as soon
        as its ``upsert`` returns; a deleted one never is.
        """
        from keeldb.engine.text_search import text_search

        self._check_open()
        return text_search(self, query, k, filter, with_metadata, with_documents)

    def hybrid_search(
        self,
        query: str,
        k: int = 10,
        *,
        vector: Any = None,
        filter: Any = None,
        fusion: str = "rrf",
        rrf_k: float | None = None,
        weights: Sequence[float] | None = None,
    ) -> list[Hit]:
        """Dense and BM25 results for one query, fused into one ranking (best first).

        ``vector`` is the dense query; when None it is computed from ``query`` with the
        collection's embedding function (InvalidArgumentError when the collection has
        none, EmbeddingFunctionError when it cannot be re-created). The dense side takes
        the nearest 64 and BM25 the top 100 (each ``k`` if larger) live rows matching
        ``filter``; ``fusion="rrf"`` (default) sums ``w / (rrf_k + rank)`` per
        list (``rrf_k`` default 10, measured on SciFact in ``docs/text.md``);
        ``fusion="weighted"`` sums ``w`` times each list's min-max normalised score.
        ``weights`` = (dense, text), default equal. Each hit's ``score`` is its fused
        score (larger = better), ``distance = -score``; metadata and document included.
        """
        from keeldb.engine.hybrid import hybrid_search

        self._check_open()
        if vector is None and isinstance(query, str) and self.embedder.spec is not None:
            check_k(k, None)  # fail before embedding
            vector = self.embedder.embed_queries([query])[0]
        return hybrid_search(self, query, k, vector, filter, fusion, rrf_k, weights)

    def scan(self, filter: Any = None, limit: int = 100, cursor: str | None = None) -> Page:
        """Page through live records (matching ``filter``) in id order, ``limit`` at a time.

        Pass the returned ``next_cursor`` to get the next page (None on the last page).
        Each record that exists for the whole scan is returned exactly once, even while
        writes happen (the cursor is the last id returned).
        """
        self._check_open()
        return scan_page(self, filter, limit, cursor)

    # --- callbacks ---------------------------------------------------------------------------

    def on_search(self, callback: Callable[[SearchStats], None]) -> None:
        """Call ``callback(SearchStats)`` after every search / search_batch."""
        self._search_callbacks.append(callback)

    def off_search(self, callback: Callable[[SearchStats], None]) -> None:
        """Stop calling ``callback`` (registered with :meth:`on_search`); no-op if absent."""
        with suppress(ValueError):
            self._search_callbacks.remove(callback)

    def on_insert(self, callback: Callable[[InsertStats], None]) -> None:
        """Call ``callback(InsertStats)`` after every acknowledged write batch."""
        self._insert_callbacks.append(callback)

    # --- upkeep -------------------------------------------------------------------------

    def flush(self) -> None:
        """Durability barrier: every write acknowledged before this call is on disk."""
        self._check_writable()
        self.versions.sync_all()

    def compact(
        self, *, progress: Callable[[str, int, int], None] | None = None
    ) -> CompactionReport:
        """Seal the memtable, merge small segments into HNSW segments and physically
        remove deleted rows. Searches keep running on the old segments meanwhile.

        ``progress(phase, done, total)``, when given, is called on this thread before
        (``done`` 0) and after (``done == total``) each phase: ``sealing`` (rows in
        memtables), ``indexing`` (rows inserted into an HNSW graph), ``writing`` (rows
        of the new segment file), ``vacuuming`` (rows of a segment rewritten without its
        deleted rows). Phases repeat per segment. It must be quick and must not call back
        into the collection."""
        self._check_writable()
        assert self._maintainer is not None
        return self._maintainer.compact(progress)

    def stats(self) -> CollectionStats:
        """Counts, per-segment detail, HNSW shape, memory and disk estimates."""
        self._check_open()
        return collection_stats(self)

    def close(self, *, checkpoint: bool = True) -> None:
        """Seal what is in memory, checkpoint, and release files (idempotent).

        ``checkpoint=False`` (a collection being dropped) stops upkeep and closes the WAL
        without sealing. After a storage failure nothing is sealed either: the next open
        replays what is durable.
        """
        if self._closed:
            return
        try:
            if self._maintainer is not None:
                self._maintainer.shutdown(checkpoint=checkpoint and self.versions.failed is None)
        finally:
            self._closed = True
