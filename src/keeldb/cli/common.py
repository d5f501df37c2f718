"""What the CLI commands share: opening a target (directory or server URL), output helpers.

A *target* is either a database directory (opened with ``keeldb.open``) or the URL of a
running ``keeldb serve`` (``http://...``), used through :class:`keeldb.client.Client`.
Both offer the same ``list_workspaces`` / ``list_collections`` / ``get_collection`` /
``create_collection`` calls, so commands are written once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keeldb.errors import DatabaseLockedError, InvalidArgumentError

__all__ = [
    "CliError",
    "env_api_key",
    "human_bytes",
    "is_url",
    "open_target",
    "parse_filter",
    "positive_int",
    "print_json",
    "print_table",
    "require_database_dir",
]


class CliError(Exception):
    """A user-facing failure: ``main`` prints the message and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def is_url(target: str) -> bool:
    """True when ``target`` names a server rather than a directory."""
    return target.startswith(("http://", "https://"))


def require_database_dir(path: str) -> Path:
    """``path`` as a Path; raises :class:`CliError` unless it holds a KeelDB database (so
    a typo, or ``keeldb info /tmp``, is reported instead of creating a database there)."""
    from keeldb.storage.format import MARKER_NAME

    p = Path(path)
    if not p.is_dir():
        raise CliError(f"no KeelDB database at {path} (not a directory)")
    if not (p / MARKER_NAME).is_file():
        raise CliError(f"no KeelDB database at {path} (no {MARKER_NAME} marker file)")
    return p


@contextlib.contextmanager
def open_target(
    target: str,
    *,
    create: bool = False,
    durability: str = "fsync",
    api_key: str | None = None,
) -> Iterator[Any]:
    """Open a database directory or connect to a server; close it on exit.

    ``create``: a missing directory becomes a new database (otherwise :class:`CliError`).
    ``durability`` applies to directories only (a server has its own). A directory held
    by a running server raises :class:`CliError` pointing at the URL form.
    """
    if is_url(target):
        from keeldb.client import Client  # imported only for URLs

        with Client(target, api_key=api_key) as client:
            yield client
        return
    if not create:
        require_database_dir(target)
    import keeldb

    try:
        db = keeldb.open(target, durability=durability)
    except DatabaseLockedError as exc:
        raise CliError(
            f"{exc}\nAnother process (a running `keeldb serve`?) has this database open; "
            "stop it, or pass the server's URL (http://host:port) instead of the directory."
        ) from exc
    try:
        yield db
    finally:
        db.close()


def human_bytes(n: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Print left-aligned columns (numbers right-aligned) to stdout."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            numeric = text.replace(",", "").replace(".", "").isdigit()
            cells.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        print("  ".join(cells).rstrip())


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON to stdout."""
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """A ``--filter`` argument (JSON object) as a dict; :class:`CliError` when invalid."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--filter is not valid JSON: {exc}", exit_code=2) from exc
    if not isinstance(value, dict):
        raise CliError("--filter must be a JSON object", exit_code=2)
    return value


def env_api_key(explicit: str | None) -> str | None:
    """The API key for URL targets: ``--api-key`` or ``KEELDB_API_KEY``."""
    return explicit if explicit is not None else os.environ.get("KEELDB_API_KEY")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"not an integer: {text!r}") from exc
    if value < 1:
        raise InvalidArgumentError(f"must be at least 1: {text!r}")
    return value
