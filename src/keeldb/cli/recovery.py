"""``keeldb backup``, ``restore`` and ``repair``: copies of a database and their use.

All three work on local directories only (backup opens the database itself, so it must
not be open in another process; repair needs it to itself too). A server URL is refused
with a usage error: backing up a running server is done through its own API.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from keeldb.cli.common import CliError, human_bytes, is_url, print_json, require_database_dir
from keeldb.engine.backup import is_archive_name
from keeldb.errors import CorruptionError, DatabaseLockedError

__all__ = ["add_parsers", "format_repair_report", "run_backup", "run_repair", "run_restore"]

LOST_IDS_SHOWN = 20


def _local_only(command: str, path: str) -> None:
    if is_url(path):
        raise CliError(
            f"{command} works on a local database directory, not a server URL (stop the "
            "server and give its directory)",
            2,
        )


def _locked(command: str, exc: DatabaseLockedError) -> CliError:
    return CliError(
        f"{exc}\n{command} needs the database to itself: stop the process that has it open "
        f"(a running `keeldb serve`?) and run {command} again"
    )


def run_backup(args: argparse.Namespace) -> int:
    """Back up the database at PATH to DEST (a new directory, or a ``.tar`` file) and
    print a summary. Returns 0."""
    _local_only("backup", args.path)
    _local_only("backup", args.dest)
    require_database_dir(args.path)
    import keeldb

    try:
        db = keeldb.open(args.path)
    except DatabaseLockedError as exc:
        raise _locked("backup", exc) from exc
    try:
        report = db.backup(args.dest, hard_links=args.hard_links)
    except CorruptionError as exc:
        partial = (
            ""
            if is_archive_name(args.dest) or not os.path.isdir(args.dest)
            else (
                f"; the partial copy in {args.dest} has no BACKUP file (restore refuses it): "
                "delete it"
            )
        )
        raise CliError(
            f"corruption: {exc}\nthe database has damage, so no verified backup can be made: "
            f"repair it first (keeldb repair {args.path}){partial}"
        ) from exc
    finally:
        db.close()
    print(
        f"backup of {args.path} written to {report.path}: {len(report.collections)} "
        f"collection(s), {report.files:,} files, {human_bytes(report.bytes)} "
        f"({report.bytes:,} bytes) in {report.seconds:.2f}s"
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Restore the backup SRC (directory or ``.tar``) into the new directory DEST, verified.
    Returns 0."""
    _local_only("restore", args.src)
    _local_only("restore", args.dest)
    import keeldb

    report = keeldb.restore(args.src, args.dest)
    print(
        f"restored {args.src} into {report.path}: {len(report.collections)} collection(s), "
        f"{report.files:,} files, {human_bytes(report.bytes)} in {report.seconds:.2f}s; "
        "every checksum verified"
    )
    return 0


def format_repair_report(report: Any) -> list[str]:
    """The lines ``keeldb repair`` prints for one :class:`keeldb.RepairReport`."""
    head = f"{report.collection}: {report.status}"
    if report.status == "intact":
        return [f"{head} (verified, not changed)"]
    if report.status == "repaired":
        head += f", {report.recovered:,} record(s) recovered"
    lines = [head]
    lost = list(report.lost_ids)
    if lost:
        shown = ", ".join(lost[:LOST_IDS_SHOWN])
        more = f" (first {LOST_IDS_SHOWN} shown)" if len(lost) > LOST_IDS_SHOWN else ""
        lines.append(f"  lost {len(lost):,} record(s) by id{more}: {shown}")
    if report.lost_unknown:
        lines.append(f"  lost {report.lost_unknown:,} row(s) whose ids could not be read")
    approx = list(report.approximate_ids)
    if approx:
        shown = ", ".join(approx[:LOST_IDS_SHOWN])
        more = f" (first {LOST_IDS_SHOWN} shown)" if len(approx) > LOST_IDS_SHOWN else ""
        lines.append(
            f"  {len(approx):,} record(s) have approximate vectors (recovered from a float16 "
            f"graph){more}: {shown}"
        )
    for damage in report.wal_damage:
        lines.append(f"  WAL damage skipped: {damage}")
    label = "problem" if report.status == "failed" else "damage found"
    for problem in report.problems:
        lines.append(f"  {label}: {problem}")
    if report.damaged_copy:
        lines.append(f"  the damaged original was moved to {report.damaged_copy}")
    if report.status == "failed":
        lines.append("  nothing was changed for this collection")
    return lines


def run_repair(args: argparse.Namespace) -> int:
    """Repair the damaged collections of PATH and print each report. Returns 1 when any
    repair failed, else 0."""
    _local_only("repair", args.path)
    require_database_dir(args.path)
    import keeldb

    try:
        reports = keeldb.repair(
            args.path, args.collection, workspace=args.workspace, force=args.force
        )
    except DatabaseLockedError as exc:
        raise _locked("repair", exc) from exc
    failed = [r for r in reports if r.status == "failed"]
    if args.json:
        print_json(
            {
                "path": args.path,
                "ok": not failed,
                "reports": [
                    {k: v for k, v in dataclasses.asdict(r).items() if k != "wal_ids"}
                    for r in reports
                ],
            }
        )
        return 1 if failed else 0
    if not reports:
        print(f"{args.path}: no collections to repair")
    for report in reports:
        for line in format_repair_report(report):
            print(line)
    repaired = sum(1 for r in reports if r.status == "repaired")
    print(
        f"{len(reports)} collection(s) examined: {repaired} repaired, {len(failed)} failed, "
        f"{len(reports) - repaired - len(failed)} intact"
    )
    if repaired:
        print("Delete the moved originals once you are satisfied with the repaired data.")
    return 1 if failed else 0


def add_parsers(sub: Any) -> None:
    """Register ``backup``, ``restore`` and ``repair`` on the subparsers."""
    local = " Local directories only (not a server URL)."
    p = sub.add_parser(
        "backup",
        help="write a consistent, verified copy of a database (directory or .tar)",
        description="Open the database at PATH (it must not be open in another process) "
        "and write a consistent copy of every collection to DEST: a new or empty "
        "directory, or a new single-file archive when DEST ends in .tar. The copy is "
        "verified (every checksum) before it is marked complete. Prints the collections, "
        "files, bytes and seconds." + local,
    )
    p.add_argument("path", metavar="PATH", help="database directory")
    p.add_argument("dest", metavar="DEST", help="new directory, or new file ending in .tar")
    p.add_argument(
        "--hard-links",
        action="store_true",
        help="hard-link the immutable files instead of copying them (same file system "
        "only; the backup then shares the source's disk blocks)",
    )
    p.set_defaults(run=run_backup)

    p = sub.add_parser(
        "restore",
        help="restore a backup (directory or .tar) into a new directory",
        description="Restore the backup SRC (a backup directory, or a .tar written by "
        "`keeldb backup`) into the new directory DEST. Incomplete backups and hostile "
        "archives (absolute paths, '..', links, devices, oversized members) are refused; "
        "every checksum is verified before DEST appears." + local,
    )
    p.add_argument("src", metavar="SRC", help="backup directory or .tar file")
    p.add_argument("dest", metavar="DEST", help="new database directory (must not exist)")
    p.set_defaults(run=run_restore)

    p = sub.add_parser(
        "repair",
        help="rebuild damaged collections from every intact record; exit 1 if one fails",
        description="Rebuild each damaged collection of the database at PATH (which must "
        "not be open elsewhere) from every record that still verifies, and report what "
        "was lost by id. The original files are moved to PATH/damaged/ only after the "
        "repaired copy verifies. Exit status: 0 every collection intact or repaired, 1 a "
        "repair failed, 2 usage error." + local,
    )
    p.add_argument("path", metavar="PATH", help="database directory")
    p.add_argument("--collection", "-c", help="repair only this collection")
    p.add_argument(
        "--workspace",
        "-w",
        help="only this workspace (default: all, or 'default' with --collection)",
    )
    p.add_argument(
        "--force", action="store_true", help="rebuild the collections even when they verify"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_repair)
