"""``keeldb info``, ``stats``, ``check`` and ``compact``: look at and maintain a database."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from keeldb.cli.common import (
    CliError,
    env_api_key,
    human_bytes,
    is_url,
    open_target,
    print_json,
    print_table,
    require_database_dir,
)
from keeldb.cli.progress import PhaseProgress
from keeldb.errors import CorruptionError, DatabaseLockedError

__all__ = ["add_parsers", "run_check", "run_compact", "run_info", "run_stats"]


def _info_row(db: Any, info: Any) -> dict[str, Any]:
    """One ``info`` row; a collection that is damaged (listed so, or found so when its
    statistics are read) gets ``damaged`` set and no statistics."""
    row: dict[str, Any] = {**dataclasses.asdict(info)}
    row.setdefault("damaged", None)
    if row["damaged"] is None:
        try:
            stats = db.get_collection(info.name, workspace=info.workspace).stats()
        except CorruptionError as exc:
            row.update(damaged=str(exc), count=-1, index_type="damaged")
        else:
            row.update(
                deleted=stats.deleted_count,
                segments=len(stats.segments),
                disk_bytes=stats.disk_bytes,
                wal_bytes=stats.wal_bytes,
                memory_bytes=stats.memory_bytes,
            )
            return row
    row.update(deleted=None, segments=None, disk_bytes=0, wal_bytes=0, memory_bytes=0)
    return row


def run_info(args: argparse.Namespace) -> int:
    """Print workspaces and collections with their sizes; damaged collections are listed
    as damaged, with their error. Returns 0."""
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        workspaces = db.list_workspaces()
        rows = [_info_row(db, info) for info in db.list_collections()]
    if args.json:
        print_json({"path": args.path, "workspaces": workspaces, "collections": rows})
        return 0
    total = sum(r["disk_bytes"] for r in rows)
    damaged = [r for r in rows if r["damaged"] is not None]
    print(
        f"KeelDB at {args.path}: {len(workspaces)} workspace(s), {len(rows)} collection(s)"
        f"{f' ({len(damaged)} damaged)' if damaged else ''}, {human_bytes(total)} on disk"
    )
    if rows:
        print()
        print_table(
            [_info_cells(r) for r in rows],
            [
                "WORKSPACE",
                "COLLECTION",
                "DIM",
                "METRIC",
                "RECORDS",
                "DELETED",
                "INDEX",
                "DISK",
                "WAL",
            ],
        )
    if damaged:
        print()
        for r in damaged:
            print(f"{r['workspace']}/{r['name']}: DAMAGED: {r['damaged']}")
        if not is_url(args.path):
            print(f"The other collections work. Repair with: keeldb repair {args.path}")
    return 0


def _info_cells(r: dict[str, Any]) -> list[str]:
    if r["damaged"] is not None:
        dim = str(r["dim"]) if r["dim"] else "?"
        return [r["workspace"], r["name"], dim, r["metric"] or "?", "-", "-", "DAMAGED", "-", "-"]
    return [
        r["workspace"],
        r["name"],
        str(r["dim"]),
        r["metric"],
        f"{r['count']:,}",
        f"{r['deleted']:,}",
        r["index_type"],
        human_bytes(r["disk_bytes"]),
        human_bytes(r["wal_bytes"]),
    ]


def run_stats(args: argparse.Namespace) -> int:
    """Print one collection's statistics and segments. Returns 0."""
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        col = db.get_collection(args.collection, workspace=args.workspace)
        info = col.info()
        stats = col.stats()
    if args.json:
        print_json({"info": dataclasses.asdict(info), "stats": dataclasses.asdict(stats)})
        return 0
    print(
        f"{stats.workspace}/{stats.name}: {info.dim}-d {info.metric}, index {stats.index_type}"
        f" (m={info.m}, ef_construction={info.ef_construction}, ef_search={info.ef_search})"
    )
    print(
        f"records {stats.live_count:,} live, {stats.deleted_count:,} deleted; "
        f"disk {human_bytes(stats.disk_bytes)}, WAL {human_bytes(stats.wal_bytes)}, "
        f"memory ~{human_bytes(stats.memory_bytes)}"
    )
    if stats.hnsw_levels:
        levels = ", ".join(f"L{k}: {v:,}" for k, v in sorted(stats.hnsw_levels.items()))
        print(f"HNSW levels {levels}; {stats.hnsw_avg_edges:.1f} edges/node on average")
    if stats.segments:
        print()
        print_table(
            [
                [
                    str(s.segment_id),
                    s.kind,
                    f"{s.rows:,}",
                    f"{s.live:,}",
                    f"{s.deleted:,}",
                    human_bytes(s.disk_bytes),
                    human_bytes(s.memory_bytes),
                ]
                for s in stats.segments
            ],
            ["SEGMENT", "KIND", "ROWS", "LIVE", "DELETED", "DISK", "MEMORY"],
        )
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Verify every checksum and reference under PATH. Returns 0 when intact, 1 when
    damage was found (each problem printed)."""
    if is_url(args.path):
        raise CliError("check reads the files directly: give the database directory", 2)
    require_database_dir(args.path)
    import keeldb

    try:
        report = keeldb.check(args.path)
    except DatabaseLockedError as exc:
        raise CliError(
            f"{exc}\ncheck needs the database to itself: stop the process that has it open "
            "(a running `keeldb serve`?) and run check again"
        ) from exc
    problems = list(report.problems)
    warnings = list(getattr(report, "warnings", []))
    if args.json:
        print_json(
            {
                "path": args.path,
                "ok": bool(report.ok),
                "files_checked": report.files_checked,
                "problems": problems,
                "warnings": warnings,
            }
        )
        return 0 if report.ok else 1
    for warning in warnings:
        print(f"warning: {warning}")
    if report.ok:
        print(f"ok: {args.path}: {report.files_checked} files checked, no damage found")
    else:
        print(
            f"DAMAGED: {args.path}: {len(problems)} problem(s) in "
            f"{report.files_checked} files checked:"
        )
        for problem in problems:
            print(f"  - {problem}")
        print(
            "The database was not modified. To rebuild the damaged collections from every "
            f"intact record, run: keeldb repair {args.path}  (it reports what was lost by "
            "id, and moves the damaged originals under damaged/ instead of deleting them)"
        )
    return 0 if report.ok else 1


def run_compact(args: argparse.Namespace) -> int:
    """Compact one collection, or every collection (of --workspace if given), showing
    each phase on a terminal. Damaged collections are skipped (said so). Returns 0, or
    1 when a collection was skipped as damaged."""
    skipped = 0
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        if args.collection is not None:
            targets = [(args.workspace or "default", args.collection)]
        else:
            infos = db.list_collections(args.workspace)
            for info in infos:
                if getattr(info, "damaged", None):
                    print(f"skipping {info.workspace}/{info.name}: DAMAGED: {info.damaged}")
                    skipped += 1
            targets = [(i.workspace, i.name) for i in infos if not getattr(i, "damaged", None)]
        for workspace, name in targets:
            _compact_one(db, workspace, name, local=not is_url(args.path))
        if not targets and not skipped:
            print("no collections to compact")
    if skipped:
        print(f"{skipped} damaged collection(s) skipped; repair with: keeldb repair {args.path}")
    return 1 if skipped else 0


def _compact_one(db: Any, workspace: str, name: str, *, local: bool) -> None:
    col = db.get_collection(name, workspace=workspace)
    info = col.info()
    print(
        f"compacting {workspace}/{name} ({info.count:,} records, index "
        f"{info.index_type}): sealing, merging, building HNSW if due...",
        flush=True,  # the next line may be minutes away
    )
    if local:  # a server compacts on its side and reports no phases
        phases = PhaseProgress(f"{workspace}/{name}: ")
        try:
            report = col.compact(progress=phases)
        finally:
            phases.close()
    else:
        report = col.compact()
    print(
        f"{workspace}/{name}: segments {report.segments_before} -> "
        f"{report.segments_after}, {report.rows_removed:,} rows removed, "
        f"{report.rows_indexed:,} indexed, {report.duration_s:.2f}s; "
        f"index {col.info().index_type}",
        flush=True,
    )


def add_parsers(sub: Any) -> None:
    """Register ``info``, ``stats``, ``check`` and ``compact`` on the subparsers."""
    target_help = "database directory, or server URL http://..."

    p = sub.add_parser(
        "info",
        help="list workspaces and collections with their sizes",
        description="List the workspaces and collections of the database "
        "at PATH with dimension, metric, record counts and disk/WAL sizes.",
    )
    p.add_argument("path", metavar="PATH", help=target_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--api-key", help="API key for a server URL (default: $KEELDB_API_KEY)")
    p.set_defaults(run=run_info)

    p = sub.add_parser(
        "stats",
        help="show one collection's statistics and segments",
        description="Show counts, index, HNSW levels, per-segment rows and "
        "memory/disk/WAL bytes of one collection.",
    )
    p.add_argument("path", metavar="PATH", help=target_help)
    p.add_argument("collection", metavar="COLLECTION", help="collection name")
    p.add_argument("--workspace", "-w", default="default", help="workspace (default: default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--api-key", help="API key for a server URL (default: $KEELDB_API_KEY)")
    p.set_defaults(run=run_stats)

    p = sub.add_parser(
        "check",
        help="verify every checksum and reference; exit 1 on damage",
        description="Read every file of the database at PATH and verify its "
        "magic, version, lengths, checksums and the references between files. "
        "Prints each problem with file and offset. Exit status: 0 intact, "
        "1 damaged, 2 usage error. Never modifies the database.",
    )
    p.add_argument("path", metavar="PATH", help="database directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_check)

    p = sub.add_parser(
        "compact",
        help="merge segments and drop deleted rows now",
        description="Compact COLLECTION, or every collection when none is "
        "named (only those of --workspace if given). On a terminal each phase (sealing, "
        "indexing N rows into HNSW, writing, vacuuming) is shown on stderr; the HNSW "
        "build's bar fills every 10,000 rows inserted. Damaged collections are skipped "
        "(exit status 1).",
    )
    p.add_argument("path", metavar="PATH", help=target_help)
    p.add_argument("collection", metavar="COLLECTION", nargs="?", help="collection (default: all)")
    p.add_argument(
        "--workspace",
        "-w",
        default=None,
        help="workspace (default: all, or 'default' when COLLECTION is given)",
    )
    p.add_argument("--api-key", help="API key for a server URL (default: $KEELDB_API_KEY)")
    p.set_defaults(run=run_compact)
