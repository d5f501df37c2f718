"""The database: a directory of workspaces of collections, owned by one process.

Layout (``docs/format.md``)::

    <root>/LOCK                           flock'ed by the owning process
    <root>/KEELDB                         marker: format version (framed JSON)
    <root>/workspaces/<ws>/<collection>/  one collection (MANIFEST, WAL, segments)

Creating a collection builds it in ``workspaces/<ws>/.creating-<name>-<rand>`` and renames
it into place (atomic); dropping renames it to ``.trash-<name>-<rand>`` first and then
deletes it. Leftovers of either, after a crash, are removed on open.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keeldb.engine.collection import Collection
from keeldb.engine.embedder import CollectionEmbedding, embedding_spec
from keeldb.engine.recovery import open_collection
from keeldb.engine.state import DURABILITY_MODES, Options
from keeldb.engine.text_index import analyzer_option
from keeldb.engine.validation import check_index_params, check_name, check_quantization
from keeldb.errors import (
    AlreadyExistsError,
    ClosedError,
    CollectionNotFoundError,
    CorruptionError,
    InvalidArgumentError,
    KeelError,
    StorageError,
)
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import (
    MAGIC_MARKER,
    MANIFEST_NAME,
    MARKER_NAME,
    WORKSPACES_DIR,
    creating_dir_name,
    is_collection_dir_name,
    is_leftover_dir,
    trash_dir_name,
)
from keeldb.storage.framed import read_framed, write_framed
from keeldb.storage.lock import DirectoryLock
from keeldb.storage.manifest import (
    CollectionConfig,
    Manifest,
    default_quantization,
    read_manifest,
    write_manifest,
)
from keeldb.types import CollectionInfo

if TYPE_CHECKING:
    from keeldb.embeddings.base import EmbeddingFunction
    from keeldb.engine.backup import BackupReport

__all__ = ["Database", "open"]


def open(  # noqa: A001 - the public name is keeldb.open
    path: str | os.PathLike[str],
    durability: str = "fsync",
    **options: Any,
) -> Database:
    """Open (creating if needed) the database in directory ``path``.

    ``durability`` is ``fsync`` (default: a write returns after its WAL record is fsynced),
    ``flush`` (handed to the OS) or ``none`` (applied in memory; durable after ``flush()``
    or ``close()``). Other keyword arguments are :class:`keeldb.engine.state.Options`
    fields (``memtable_rows``, ``hnsw_min_rows``, ``write_timeout_s``, ``salvage``,
    ``verify``, ...). Raises DatabaseLockedError if another process (or another open
    Database in this process) holds the directory.
    """
    if durability not in DURABILITY_MODES:
        raise InvalidArgumentError(
            f"durability must be one of {DURABILITY_MODES}, got {durability!r}"
        )
    try:
        opts = Options(durability=durability, **options)
    except TypeError as exc:
        raise InvalidArgumentError(f"unknown option: {exc}") from exc
    return Database(os.fspath(path), opts)


class Database:
    """An open KeelDB directory. Thread-safe; a context manager (closes on exit)."""

    def __init__(self, path: str, options: Options) -> None:
        self.path = os.path.abspath(path)
        self.options = options
        self.fs: FileSystem = options.fs
        self._lock = threading.RLock()
        self._collections: dict[tuple[str, str], Collection] = {}
        self._closed = False
        self.fs.makedirs(self.path)
        self._dir_lock = DirectoryLock(self.path)
        try:
            self._init_marker()
            self.fs.makedirs(os.path.join(self.path, WORKSPACES_DIR))
            # Make the directories themselves durable: every collection hangs off them.
            self.fs.sync_dir(self.path)
            self.fs.sync_dir(os.path.dirname(self.path))
            self._clean_leftovers()
        except BaseException:
            self._dir_lock.release()
            raise

    # --- lifecycle ---------------------------------------------------------------------------

    def _init_marker(self) -> None:
        marker = os.path.join(self.path, MARKER_NAME)
        if self.fs.exists(marker):
            read_framed(self.fs, marker, MAGIC_MARKER)  # verifies the format version
        else:
            write_framed(self.fs, marker, MAGIC_MARKER, [b'{"format":1}'], atomic=True)

    def _clean_leftovers(self) -> None:
        root = os.path.join(self.path, WORKSPACES_DIR)
        for ws in self.fs.listdir(root):
            ws_dir = os.path.join(root, ws)
            if not os.path.isdir(ws_dir):
                continue
            for name in self.fs.listdir(ws_dir):
                if is_leftover_dir(name):
                    self.fs.rmtree(os.path.join(ws_dir, name))

    def close(self) -> None:
        """Close every collection (sealing memory, so the next open replays nothing) and
        release the directory lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[BaseException] = []
            for col in self._collections.values():
                try:
                    col.close()
                except BaseException as exc:  # close the rest, then report
                    errors.append(exc)
            self._collections.clear()
            self._dir_lock.release()
            if errors:
                raise errors[0]

    def abandon(self) -> None:
        """Release the directory lock without running any shutdown code, as the kernel
        does when the owning process dies (crash tests). Nothing is sealed or synced; the
        object refuses every call afterwards; the next open recovers from the WAL."""
        with self._lock:
            self._closed = True
            self._dir_lock.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.path} is closed")

    # --- collections -------------------------------------------------------------------------

    def _collection_dir(self, workspace: str, name: str) -> str:
        return os.path.join(self.path, WORKSPACES_DIR, workspace, name)

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        *,
        workspace: str = "default",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        exist_ok: bool = False,
        embedding: EmbeddingFunction | None = None,
        text: Any = None,
        quantization: str | None = None,
    ) -> Collection:
        """Create a collection (and its workspace if new).

        ``embedding``: an :class:`~keeldb.embeddings.EmbeddingFunction` (registered
        name) that computes vectors from documents for vector-less ``upsert`` and string
        queries; its name and config are recorded and it is re-created when the
        collection is opened again. ``dim`` may then be omitted (taken from it; a
        different ``dim`` is an InvalidArgumentError). ``text``: the full-text analyser,
        a :class:`keeldb.text.Analyzer` or a dict of its options (``{"language": None}``:
        no stop words, no stemming); None = the default (English). Both are recorded in
        the manifest.

        ``quantization``: how HNSW graphs keep their copy of the vectors, ``"none"``
        (float32), ``"fp16"`` or ``"sq8"`` (8-bit scalar quantised); returned distances
        are exact under each. None: ``fp16`` under ``cosine``, ``none`` otherwise.

        Raises AlreadyExistsError if it exists, unless ``exist_ok`` and its parameters
        (including the embedding function's name and config, the analyser and the
        quantization; a None ``quantization`` compares as the metric's default) are the
        same (then the existing collection is returned). Raises InvalidArgumentError for a
        bad parameter. Parameters: ``docs/params.md``.
        """
        self._check_open()
        check_name(workspace, "workspace")
        check_name(name, "collection")
        dim, spec = _dim_and_spec(dim, embedding)
        check_index_params(dim, metric, m, ef_construction, ef_search)
        analyzer = analyzer_option(text)
        asked = {
            "dim": dim,
            "metric": metric,
            "m": m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "embedding": spec,
            "text": analyzer.config(),
            # None (the default) is resolved against the existing collection's metric
            "quantization": None
            if quantization is None
            else check_quantization(quantization, metric),
        }
        resolved = check_quantization(quantization, metric)
        with self._lock:
            self._check_open()
            if self._exists(workspace, name):
                col = self._existing(workspace, name, asked, exist_ok)
                if embedding is not None and col.embedder._fn is None:
                    col.embedder = CollectionEmbedding(col.config, given=embedding)
                return col
            config = CollectionConfig(
                name, workspace, dim, metric, m, ef_construction, ef_search, time.time(),
                resolved, embedding=spec, text=analyzer.config(),
            )  # fmt: skip
            col = self._create(config)
            if embedding is not None:  # this process uses the given instance as is
                col.embedder = CollectionEmbedding(col.config, given=embedding)
            return col

    def _existing(
        self, workspace: str, name: str, asked: dict[str, Any], exist_ok: bool
    ) -> Collection:
        """The existing collection when ``exist_ok`` and its parameters are ``asked``;
        AlreadyExistsError otherwise (naming the parameters that differ)."""
        col = self.get_collection(name, workspace=workspace)
        asked = dict(asked)
        if asked.get("quantization", "") is None:
            # a default is the asked metric's: when the metric differs, not a second difference
            if col.config.metric == asked["metric"]:
                asked["quantization"] = default_quantization(asked["metric"])
            else:
                del asked["quantization"]
        have = {key: getattr(col.config, key) for key in asked}
        if have["text"] is None:  # manifests from before analysers were recorded
            have["text"] = col.analyzer.config()
        differ = [
            f"{key}={have[key]!r} (asked {value!r})"
            for key, value in asked.items()
            if have[key] != value
        ]
        if exist_ok and not differ:
            return col
        why = f" with {', '.join(differ)}" if exist_ok else ""
        raise AlreadyExistsError(f"collection {workspace}/{name} already exists{why}")

    def _create(self, config: CollectionConfig) -> Collection:
        """Build the collection's directory atomically and open it."""
        workspace, name = config.workspace, config.name
        ws_dir = os.path.join(self.path, WORKSPACES_DIR, workspace)
        self.fs.makedirs(ws_dir)
        tmp = os.path.join(ws_dir, creating_dir_name(name, uuid.uuid4().hex[:8]))
        self.fs.makedirs(tmp)
        write_manifest(self.fs, tmp, Manifest(1, config))
        final = self._collection_dir(workspace, name)
        self.fs.rename(tmp, final)
        self.fs.sync_dir(ws_dir)
        self.fs.sync_dir(os.path.join(self.path, WORKSPACES_DIR))
        col = open_collection(final, self.options)
        self._collections[(workspace, name)] = col
        return col

    def _exists(self, workspace: str, name: str) -> bool:
        return (workspace, name) in self._collections or os.path.isfile(
            os.path.join(self._collection_dir(workspace, name), MANIFEST_NAME)
        )

    def get_collection(self, name: str, *, workspace: str = "default") -> Collection:
        """The open collection ``workspace/name``; CollectionNotFoundError if absent."""
        self._check_open()
        check_name(workspace, "workspace")
        check_name(name, "collection")
        with self._lock:
            self._check_open()
            col = self._collections.get((workspace, name))
            if col is not None:
                return col
            directory = self._collection_dir(workspace, name)
            if not os.path.isfile(os.path.join(directory, MANIFEST_NAME)):
                raise CollectionNotFoundError(f"collection {workspace}/{name} does not exist")
            col = open_collection(directory, self.options)
            self._collections[(workspace, name)] = col
            return col

    def list_workspaces(self) -> list[str]:
        """Workspaces holding at least one collection, sorted."""
        self._check_open()
        root = os.path.join(self.path, WORKSPACES_DIR)
        return [ws for ws in self.fs.listdir(root) if self._names_in(ws)]

    def _names_in(self, workspace: str) -> list[str]:
        ws_dir = os.path.join(self.path, WORKSPACES_DIR, workspace)
        if not os.path.isdir(ws_dir):
            return []
        return [
            n
            for n in self.fs.listdir(ws_dir)
            if is_collection_dir_name(n) and os.path.isfile(os.path.join(ws_dir, n, MANIFEST_NAME))
        ]

    def list_collections(self, workspace: str | None = None) -> list[CollectionInfo]:
        """Info for every collection (of ``workspace``, or of all workspaces), sorted by
        workspace and name. Opens collections not opened yet. A collection that cannot be
        opened or used because of damage is listed with ``damaged`` set (see
        :class:`CollectionInfo`); the others are listed and keep working."""
        self._check_open()
        if workspace is not None:
            check_name(workspace, "workspace")
        spaces = [workspace] if workspace is not None else self.list_workspaces()
        out: list[CollectionInfo] = []
        for ws in spaces:
            for name in self._names_in(ws):
                try:
                    out.append(self.get_collection(name, workspace=ws).info())
                except (CorruptionError, StorageError) as exc:
                    # One damaged collection must not hide the healthy ones.
                    out.append(self._damaged_info(ws, name, exc))
        return out

    def _damaged_info(self, workspace: str, name: str, exc: KeelError) -> CollectionInfo:
        try:
            c = read_manifest(self.fs, self._collection_dir(workspace, name)).config
            params = (c.dim, c.metric, -1, c.m, c.ef_construction, c.ef_search, c.created_at)
            emb = None if c.embedding is None else str(c.embedding.get("name"))
            quantization = c.graph_quantization
        except KeelError:
            params = (0, "", -1, 0, 0, 0, 0.0)
            emb = None
            quantization = ""
        return CollectionInfo(
            name, workspace, *params, "damaged", str(exc), quantization, embedding=emb
        )

    def drop_collection(self, name: str, *, workspace: str = "default") -> None:
        """Delete a collection and every file of it; CollectionNotFoundError if absent.
        Existing handles to it raise ClosedError afterwards."""
        self._check_open()
        check_name(workspace, "workspace")
        check_name(name, "collection")
        with self._lock:
            if not self._exists(workspace, name):
                raise CollectionNotFoundError(f"collection {workspace}/{name} does not exist")
            col = self._collections.pop((workspace, name), None)
            if col is not None:
                col.close(checkpoint=False)
            ws_dir = os.path.join(self.path, WORKSPACES_DIR, workspace)
            trash = os.path.join(ws_dir, trash_dir_name(name, uuid.uuid4().hex[:8]))
            self.fs.rename(self._collection_dir(workspace, name), trash)
            self.fs.sync_dir(ws_dir)
            self.fs.rmtree(trash)

    def backup(self, dest: str | os.PathLike[str], *, hard_links: bool = False) -> BackupReport:
        """Write a consistent copy of every collection to the new directory ``dest`` while
        writers go on: every write acknowledged before the call is in it, none half
        applied, every checksum verified. Restore it with :func:`keeldb.restore`.
        ``hard_links=True`` links immutable files instead of copying them (same file
        system only; the backup then shares the source's disk blocks). A ``dest`` ending
        in ``.tar`` gets the single-file (tar) form. See
        :func:`keeldb.engine.backup.backup` for the contract and errors."""
        from keeldb.engine.backup import backup

        self._check_open()
        return backup(self, dest, hard_links=hard_links)

    def __repr__(self) -> str:
        return f"<keeldb.Database {self.path}>"


def _dim_and_spec(
    dim: int | None, embedding: EmbeddingFunction | None
) -> tuple[int, dict[str, Any] | None]:
    """The collection's dim (given, or the embedding function's) and the function's
    manifest spec (None without one); InvalidArgumentError when neither gives a dim or
    they differ."""
    if embedding is None:
        if dim is None:
            raise InvalidArgumentError("create_collection needs dim (or an embedding function)")
        return dim, None
    spec = embedding_spec(embedding)  # first: checks that it is an embedding function
    if dim is not None and dim != embedding.dim:
        raise InvalidArgumentError(
            f"dim {dim!r} differs from the embedding function's dim {embedding.dim}"
        )
    return embedding.dim, spec
