"""The ``keeldb`` command: a thin layer over the library (see docs/cli.md).

Subcommands: ``serve``, ``import``, ``export``, ``info``, ``stats``, ``text-search``,
``hybrid-search``, ``search``, ``check``, ``compact``, ``backup``, ``restore``, ``repair``. Only
``serve`` needs FastAPI/uvicorn (imported when it runs); every other command, including
one aimed at a server URL (through :class:`keeldb.Client`, which needs no extra), works
with the base install.

Exit status: 0 success, 1 failure (including ``check`` finding damage, a failed
``repair`` and a file that cannot be read or written), 2 usage error, 130 interrupted;
``serve`` exits 3 when uvicorn cannot start (e.g. the port is taken). Errors are one line
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keeldb.cli import admin, recovery, search, serve, transfer
from keeldb.cli.common import CliError
from keeldb.errors import KeelError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (each has its own ``--help``)."""
    import keeldb

    parser = argparse.ArgumentParser(
        prog="keeldb",
        description="KeelDB: an embeddable vector database. Serve it over HTTP, import and "
        "export data, inspect, check, compact, back up, restore and repair a database directory.",
        epilog="Run 'keeldb COMMAND --help' for a command's options. Docs: docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"keeldb {keeldb.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.add_parser(sub)
    transfer.add_parsers(sub)
    admin.add_parsers(sub)
    search.add_parsers(sub)
    recovery.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except CliError as exc:
        print(f"keeldb {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeelError as exc:
        print(f"keeldb {args.command}: error: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the command reads or writes: say which, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"keeldb {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"keeldb {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `keeldb info | head`
        return 0
