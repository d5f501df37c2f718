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
from keeldb.errors import DatabaseLockedError

__all__ = ["add_parsers", "run_check", "run_compact", "run_info", "run_stats"]


def run_info(args: argparse.Namespace) -> int:
    """Print workspaces and collections with their sizes. Returns 0."""
    rows: list[dict[str, Any]] = []
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        workspaces = db.list_workspaces()
        for info in db.list_collections():
            stats = db.get_collection(info.name, workspace=info.workspace).stats()
            rows.append(
                {
                    **dataclasses.asdict(info),
                    "deleted": stats.deleted_count,
                    "segments": len(stats.segments),
                    "disk_bytes": stats.disk_bytes,
                    "wal_bytes": stats.wal_bytes,
                    "memory_bytes": stats.memory_bytes,
                }
            )
    if args.json:
        print_json({"path": args.path, "workspaces": workspaces, "collections": rows})
        return 0
    total = sum(r["disk_bytes"] for r in rows)
    print(
        f"KeelDB at {args.path}: {len(workspaces)} workspace(s), {len(rows)} collection(s), "
        f"{human_bytes(total)} on disk"
    )
    if rows:
        print()
        print_table(
            [
                [
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
                for r in rows
            ],
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
    return 0


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
        print("The database was not modified. Keep a copy of the directory before repairing.")
    return 0 if report.ok else 1


def run_compact(args: argparse.Namespace) -> int:
    """Compact one collection, or every collection (of --workspace if given). Returns 0."""
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        if args.collection is not None:
            targets = [(args.workspace or "default", args.collection)]
        else:
            targets = [(i.workspace, i.name) for i in db.list_collections(args.workspace)]
        for workspace, name in targets:
            col = db.get_collection(name, workspace=workspace)
            info = col.info()
            print(
                f"compacting {workspace}/{name} ({info.count:,} records, index "
                f"{info.index_type}): sealing, merging, building HNSW if due...",
                flush=True,  # the next line may be minutes away
            )
            report = col.compact()
            print(
                f"{workspace}/{name}: segments {report.segments_before} -> "
                f"{report.segments_after}, {report.rows_removed:,} rows removed, "
                f"{report.rows_indexed:,} indexed, {report.duration_s:.2f}s; "
                f"index {col.info().index_type}",
                flush=True,
            )
        if not targets:
            print("no collections to compact")
    return 0


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
        "named (only those of --workspace if given).",
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
