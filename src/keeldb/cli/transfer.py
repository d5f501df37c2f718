"""``keeldb import`` and ``keeldb export``.

Import is *resumable*: every ``--checkpoint-every`` batches it flushes the collection (so
everything so far is durable) and then records the number of input rows done in a small
checkpoint file next to the input (``FILE.keeldb-import.json``, replaced atomically).
Re-running the same command after a crash or Ctrl-C continues from the last checkpoint;
rows after it are simply upserted again, which is harmless because upsert by id is
idempotent. The checkpoint is removed when the import completes.

Export is *atomic*: it writes ``FILE.keeldb-tmp``, fsyncs, and renames it over ``FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keeldb.cli.common import (
    CliError,
    env_api_key,
    is_url,
    open_target,
    parse_filter,
    positive_int,
)
from keeldb.cli.progress import PhaseProgress, Progress
from keeldb.cli.sources import open_source, write_jsonl_records, write_npz_records
from keeldb.errors import CollectionNotFoundError, KeelError

__all__ = ["add_parsers", "run_export", "run_import"]

CHECKPOINT_VERSION = 1


def _checkpoint_identity(args: argparse.Namespace) -> dict[str, Any]:
    """What must match for a checkpoint to apply: the same input file (path, size,
    mtime) going to the same collection."""
    st = os.stat(args.file)
    return {
        "version": CHECKPOINT_VERSION,
        "file": str(Path(args.file).resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "target": args.path if is_url(args.path) else str(Path(args.path).resolve()),
        "workspace": args.workspace,
        "collection": args.collection,
    }


def _read_checkpoint(path: Path, identity: dict[str, Any]) -> int:
    """Rows already imported per the checkpoint at ``path`` (0 if none applies)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise CliError(
            f"checkpoint {path} is unreadable ({exc}); delete it or pass --no-resume"
        ) from exc
    if not isinstance(state, dict) or {k: state.get(k) for k in identity} != identity:
        raise CliError(
            f"checkpoint {path} belongs to another import (different file, database or "
            "collection, or the file changed); delete it or pass --no-resume"
        )
    rows = state.get("rows_done")
    if not isinstance(rows, int) or rows < 0:
        raise CliError(f"checkpoint {path} is malformed; delete it or pass --no-resume")
    return rows


def _write_checkpoint(path: Path, identity: dict[str, Any], rows_done: int) -> None:
    tmp = path.with_name(path.name + ".keeldb-tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump({**identity, "rows_done": rows_done}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# What reading a damaged or foreign input file raises (a bad .gz stream, a binary file).
_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)

# Collection parameters ``import`` can set, with their defaults for a new collection.
_CREATE_DEFAULTS = {"metric": "cosine", "m": 16, "ef_construction": 200}


def _parameter_conflicts(col: Any, args: argparse.Namespace) -> None:
    """Refuse an explicit --metric/--m/--ef-construction that differs from the existing
    collection's (it used to be silently ignored)."""
    info = col.info()
    for name in _CREATE_DEFAULTS:
        given = getattr(args, name)
        if given is not None and given != getattr(info, name):
            option = "--" + name.replace("_", "-")
            raise CliError(
                f"collection {args.workspace}/{args.collection} exists with "
                f"{name}={getattr(info, name)}, but {option} {given} was given; leave "
                f"{option} out to import into it, or import into a new collection",
                exit_code=2,
            )


def _open_collection(
    db: Any, args: argparse.Namespace, source: Any, start: int
) -> tuple[Any, bool]:
    """The collection to import into, and whether this run created it."""
    try:
        col = db.get_collection(args.collection, workspace=args.workspace)
    except CollectionNotFoundError:
        if start:
            raise CliError(
                f"the checkpoint says {start:,} rows were imported, but collection "
                f"{args.workspace}/{args.collection} does not exist (dropped since?); "
                "pass --no-resume to import the whole file again"
            ) from None
        if args.no_create:
            raise
        params = {k: getattr(args, k) or v for k, v in _CREATE_DEFAULTS.items()}
        col = db.create_collection(
            args.collection, dim=source.dim, workspace=args.workspace, **params
        )
        return col, True
    _parameter_conflicts(col, args)
    return col, False


def _source_batches(source: Any, start: int, size: int, path: str) -> Iterator[Any]:
    """``source.batches`` with read failures (a damaged .gz, a binary file) as CliError."""
    batches = source.batches(start, size)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            raise CliError(f"{path}: cannot read: {exc}") from exc
        yield batch


def _import_rows(
    col: Any, source: Any, args: argparse.Namespace, checkpoint: Path, start: int
) -> tuple[int, int, int]:
    """Upsert every batch from row ``start``; returns (rows done, records imported, row of
    the last checkpoint written). Ctrl-C says where re-running resumes, then propagates."""
    identity = _checkpoint_identity(args)
    progress = Progress(source.total, "import", enabled=False if args.quiet else None)
    progress.done = start
    rows_done, imported, batches, saved = start, 0, 0, start
    try:
        for consumed, ids, vectors, metadata, documents in _source_batches(
            source, start, args.batch_size, args.file
        ):
            if ids:
                col.upsert(ids, vectors, metadata, documents=documents)
            rows_done += consumed
            imported += len(ids)
            batches += 1
            progress.advance(consumed)
            if batches % args.checkpoint_every == 0:
                col.flush()
                _write_checkpoint(checkpoint, identity, rows_done)
                saved = rows_done
        col.flush()
    except KeyboardInterrupt:
        progress.close()
        print(
            f"keeldb import: interrupted after row {rows_done:,}; the last checkpoint is at "
            f"row {saved:,} ({checkpoint if saved else 'none written yet'}). Re-run the same "
            f"command to resume from row {saved:,}: rows after it are upserted again, which "
            "is harmless.",
            file=sys.stderr,
        )
        raise
    progress.close()
    return rows_done, imported, saved


def _build_index(col: Any, *, local: bool, quiet: bool) -> None:
    """``import --index``: build the HNSW index now (``compact``), saying so before and
    after; on a terminal each compaction phase is drawn (the graph build's bar fills
    every 10,000 rows inserted)."""
    count = col.count()
    print(f"building the HNSW index for {count:,} records...", flush=True)
    if local:
        phases = PhaseProgress("index: ", enabled=False if quiet else None)
        try:
            report = col.compact(progress=phases)
        finally:
            phases.close()
    else:  # a server builds on its side and reports no phases
        report = col.compact()
    index = col.info().index_type
    print(f"index: {index}, built in {report.duration_s:.1f}s ({_segments(report)})")
    if index != "hnsw":
        print(
            "the collection is small enough to be searched exactly (below the engine's "
            "hnsw_min_rows, 10,000 rows by default): no HNSW graph is needed yet"
        )


def _segments(report: Any) -> str:
    return (
        f"segments {report.segments_before} -> {report.segments_after}, "
        f"{report.rows_removed:,} rows removed, {report.rows_indexed:,} indexed"
    )


def _undo_create(db: Any, args: argparse.Namespace, checkpoint: Path) -> str:
    """After a failed import that created the collection: drop it and its checkpoint, so
    nothing half-made is left. Returns a sentence for the error message."""
    name = f"{args.workspace}/{args.collection}"
    try:
        db.drop_collection(args.collection, workspace=args.workspace)
    except (KeelError, OSError) as exc:
        return f"collection {name}, created by this import, could not be removed: {exc}"
    checkpoint.unlink(missing_ok=True)
    return f"collection {name}, created by this import, was removed"


def _check_paths(args: argparse.Namespace, checkpoint: Path) -> None:
    for what, path in (("--ids", args.ids), ("--metadata", args.metadata)):
        if path is not None and not Path(path).is_file():
            raise CliError(f"{what} {path}: no such file", exit_code=2)
    _check_parent(checkpoint, "checkpoint")


def run_import(args: argparse.Namespace) -> int:
    """Load FILE into COLLECTION of the database (or server) at PATH. Returns 0.

    A failure removes the collection when this run created it (and its checkpoint);
    Ctrl-C keeps everything and says where re-running the same command resumes.
    """
    checkpoint = Path(args.checkpoint or f"{args.file}.keeldb-import.json")
    _check_paths(args, checkpoint)
    try:
        source = open_source(
            args.file, ids_file=args.ids, metadata_file=args.metadata, id_prefix=args.id_prefix
        )
    except _READ_ERRORS as exc:
        raise CliError(f"{args.file}: cannot read: {exc}") from exc
    start = 0 if args.no_resume else _read_checkpoint(checkpoint, _checkpoint_identity(args))
    # Local bulk loads skip the per-batch fsync; the checkpoint flush is the barrier.
    with open_target(
        args.path, create=True, durability="none", api_key=env_api_key(args.api_key)
    ) as db:
        col, created = _open_collection(db, args, source, start)
        if start:
            print(f"resuming at row {start:,} (from {checkpoint})")
        t0 = time.monotonic()
        try:
            if source.dim is not None and col.dim != source.dim:
                raise CliError(
                    f"{args.file} has {source.dim}-d vectors; collection "
                    f"{args.workspace}/{args.collection} is {col.dim}-d"
                )
            _, imported, _ = _import_rows(col, source, args, checkpoint, start)
        except (CliError, KeelError) as exc:
            if not created:
                raise
            message = exc.args[0] if isinstance(exc, CliError) else f"{exc.code}: {exc}"
            raise CliError(f"{message}\n{_undo_create(db, args, checkpoint)}") from exc
        checkpoint.unlink(missing_ok=True)
        elapsed = time.monotonic() - t0
        print(
            f"imported {imported:,} records into {args.workspace}/{args.collection} "
            f"in {elapsed:.1f}s ({imported / max(elapsed, 1e-9):,.0f}/s); "
            f"collection now holds {col.count():,}"
        )
        if args.index:
            _build_index(col, local=not is_url(args.path), quiet=args.quiet)
        else:
            print(
                "rows not yet in an HNSW segment are searched exactly; the HNSW index is "
                "built in the background (closing waits for a build in progress), or now "
                "with `keeldb compact` (or import with --index)"
            )
    return 0


def _check_parent(path: Path, what: str) -> None:
    """A file about to be written: its directory must exist (CliError, exit 2)."""
    parent = path.parent
    if not parent.exists():
        raise CliError(f"cannot write {what} {path}: directory {parent} does not exist", 2)
    if not parent.is_dir():
        raise CliError(f"cannot write {what} {path}: {parent} is not a directory", 2)
    if path.is_dir():
        raise CliError(f"cannot write {what} {path}: it is a directory", 2)


def _pages(col: Any, flt: dict[str, Any] | None, batch: int, progress: Progress) -> Iterator[Any]:
    cursor = None
    while True:
        page = col.scan(filter=flt, limit=batch, cursor=cursor)
        progress.advance(len(page.records))
        yield page.records
        cursor = page.next_cursor
        if cursor is None:
            return


def run_export(args: argparse.Namespace) -> int:
    """Write COLLECTION (or the part matching --filter) to FILE. Returns 0."""
    name = args.file.lower()
    if not name.endswith((".jsonl", ".jsonl.gz", ".npz")):
        raise CliError("export writes .jsonl, .jsonl.gz or .npz (by FILE's extension)", 2)
    flt = parse_filter(args.filter)
    _check_parent(Path(args.file), "export file")
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        col = db.get_collection(args.collection, workspace=args.workspace)
        progress = Progress(col.count(filter=flt), "export", enabled=False if args.quiet else None)
        pages = _pages(col, flt, args.batch_size, progress)
        try:
            if name.endswith(".npz"):
                n = write_npz_records(args.file, pages, col.dim)
            else:
                n = write_jsonl_records(args.file, pages)
        finally:
            progress.close()
    print(f"exported {n:,} records from {args.workspace}/{args.collection} to {args.file}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="database directory, or server URL http://...")
    p.add_argument("collection", metavar="COLLECTION", help="collection name")
    p.add_argument("file", metavar="FILE", help="the data file (format from its extension)")
    p.add_argument("--workspace", "-w", default="default", help="workspace (default: default)")
    p.add_argument("--batch-size", type=positive_int, default=1000, help="rows per request")
    p.add_argument("--api-key", help="API key for a server URL (default: $KEELDB_API_KEY)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_parsers(sub: Any) -> None:
    """Register ``import`` and ``export`` on the CLI's subparsers."""
    p = sub.add_parser(
        "import",
        help="load vectors, ids, metadata and documents from .npy/.npz/.jsonl into a collection",
        description="Load FILE into COLLECTION, creating the collection (dim from the "
        "file) if needed. Resumable: re-run the same command after an interruption to "
        "continue from the last checkpoint. Formats: .jsonl[.gz] lines "
        '{"id", "vector", "metadata", "document"}; .npz with vectors/ids/metadata/'
        "documents arrays; .npy vectors with --ids and --metadata side files.",
    )
    _common(p)
    p.add_argument(
        "--metric",
        choices=["cosine", "l2", "ip"],
        help="metric when creating the collection (default: cosine); for an existing "
        "collection it must match",
    )
    p.add_argument("--m", type=positive_int, help="HNSW m when creating (default: 16; must match)")
    p.add_argument(
        "--ef-construction",
        type=positive_int,
        help="HNSW ef_construction when creating (default: 200; must match)",
    )
    p.add_argument(
        "--index",
        action="store_true",
        help="build the HNSW index before returning (else it is built in the background)",
    )
    p.add_argument("--no-create", action="store_true", help="fail if the collection is missing")
    p.add_argument("--ids", metavar="TXT", help=".npy only: file with one id per line")
    p.add_argument(
        "--metadata",
        metavar="JSONL",
        help=".npy only: .jsonl[.gz] with one metadata object per line",
    )
    p.add_argument("--id-prefix", default="", help=".npy without --ids: prefix for row-number ids")
    p.add_argument(
        "--checkpoint", metavar="FILE", help="checkpoint file (default: FILE.keeldb-import.json)"
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=20,
        help="batches between checkpoints (default: 20)",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore an existing checkpoint and start from the first row",
    )
    p.set_defaults(run=run_import)

    p = sub.add_parser(
        "export",
        help="write a collection's records to .jsonl/.jsonl.gz/.npz",
        description="Write every record of COLLECTION (or those matching --filter) to "
        "FILE, atomically (a temporary file renamed into place when complete).",
    )
    _common(p)
    p.add_argument(
        "--filter", metavar="JSON", help="only matching records, e.g. '{\"year\": 2020}'"
    )
    p.set_defaults(run=run_export)
