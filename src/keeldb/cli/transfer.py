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
import time
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
from keeldb.cli.progress import Progress
from keeldb.cli.sources import open_source, write_jsonl_records, write_npz_records
from keeldb.errors import CollectionNotFoundError

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


def run_import(args: argparse.Namespace) -> int:
    """Load FILE into COLLECTION of the database (or server) at PATH. Returns 0."""
    source = open_source(
        args.file, ids_file=args.ids, metadata_file=args.metadata, id_prefix=args.id_prefix
    )
    checkpoint = Path(args.checkpoint or f"{args.file}.keeldb-import.json")
    identity = _checkpoint_identity(args)
    start = 0 if args.no_resume else _read_checkpoint(checkpoint, identity)
    # Local bulk loads skip the per-batch fsync; the checkpoint flush is the barrier.
    with open_target(
        args.path, create=True, durability="none", api_key=env_api_key(args.api_key)
    ) as db:
        try:
            col = db.get_collection(args.collection, workspace=args.workspace)
        except CollectionNotFoundError:
            if args.no_create:
                raise
            col = db.create_collection(
                args.collection,
                dim=source.dim,
                metric=args.metric,
                workspace=args.workspace,
                m=args.m,
                ef_construction=args.ef_construction,
            )
        if source.dim is not None and col.dim != source.dim:
            raise CliError(
                f"{args.file} has {source.dim}-d vectors; collection "
                f"{args.workspace}/{args.collection} is {col.dim}-d"
            )
        if start:
            print(f"resuming at row {start:,} (from {checkpoint})")
        progress = Progress(source.total, "import", enabled=False if args.quiet else None)
        progress.done = start
        t0 = time.monotonic()
        rows_done, imported, batches = start, 0, 0
        try:
            for consumed, ids, vectors, metadata in source.batches(start, args.batch_size):
                if ids:
                    col.upsert(ids, vectors, metadata)
                rows_done += consumed
                imported += len(ids)
                batches += 1
                progress.advance(consumed)
                if batches % args.checkpoint_every == 0:
                    col.flush()
                    _write_checkpoint(checkpoint, identity, rows_done)
            col.flush()
        finally:
            progress.close()
        checkpoint.unlink(missing_ok=True)
        elapsed = time.monotonic() - t0
        print(
            f"imported {imported:,} records into {args.workspace}/{args.collection} "
            f"in {elapsed:.1f}s ({imported / max(elapsed, 1e-9):,.0f}/s); "
            f"collection now holds {col.count():,}"
        )
    return 0


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
        help="load vectors, ids and metadata from .npy/.npz/.jsonl into a collection",
        description="Load FILE into COLLECTION, creating the collection (dim from the "
        "file) if needed. Resumable: re-run the same command after an interruption to "
        "continue from the last checkpoint. Formats: .jsonl[.gz] lines "
        '{"id", "vector", "metadata"}; .npz with vectors/ids/metadata arrays; .npy '
        "vectors with --ids and --metadata side files.",
    )
    _common(p)
    p.add_argument(
        "--metric",
        choices=["cosine", "l2", "ip"],
        default="cosine",
        help="metric when creating the collection (default: cosine)",
    )
    p.add_argument("--m", type=positive_int, default=16, help="HNSW m when creating")
    p.add_argument(
        "--ef-construction",
        type=positive_int,
        default=200,
        help="HNSW ef_construction when creating",
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
