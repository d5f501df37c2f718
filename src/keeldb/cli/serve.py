"""``keeldb serve``: run the HTTP API (imports FastAPI and uvicorn only when run)."""

from __future__ import annotations

import argparse
from typing import Any

from keeldb.cli.common import CliError, positive_int
from keeldb.errors import InvalidArgumentError

__all__ = ["add_parser", "import_embedding_modules", "run_serve"]


def run_serve(args: argparse.Namespace) -> int:
    """Serve the database at PATH until SIGTERM/SIGINT. Returns 0 after a clean stop.

    Exit statuses (docs/cli.md): 2 for an unsafe bind without keys (a usage error), 1
    for a KeelDB error (a short API key, a bad keys file, a locked database: each
    ``invalid_argument`` or ``database_locked``), 3 when uvicorn cannot start (e.g. the
    port is taken: its ``sys.exit(3)``).
    """
    from keeldb.server.config import ServerConfig

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CliError(
            f"keeldb serve needs the server extra ({exc.name} is missing): "
            "pip install 'keeldb[server]'"
        ) from exc
    from keeldb.server.runner import serve

    import_embedding_modules(args.embeddings_module or [])
    database = _open_sharded(args)
    config = ServerConfig(
        keys=ServerConfig.collect_keys(args.api_key, args.keys_file),
        max_body_bytes=args.max_body_bytes,
        max_k=args.max_k,
        max_ef=args.max_ef,
        max_batch=args.max_batch,
        max_query_batch=args.max_query_batch,
        max_filter_depth=args.max_filter_depth,
        cors_origins=list(args.cors_origin or []),
        threads=args.threads,
        write_threads=args.write_threads,
        threads_per_request=args.threads_per_request,
        public_docs=args.public_docs,
        backup_dir=args.backup_dir,
    )
    try:
        serve(
            args.path,
            host=args.host,
            port=args.port,
            config=config,
            durability=args.durability,
            insecure=args.insecure,
            log_level=args.log_level,
            access_log=args.access_log,
            graceful_timeout_s=args.graceful_timeout,
            database=database,
        )
    except InvalidArgumentError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    finally:
        if database is not None:
            database.close()  # idempotent: normally the server's shutdown closed it
    return 0


def import_embedding_modules(modules: list[str]) -> None:
    """Import each module named by ``--embeddings-module`` so the embedding functions it
    registers (``keeldb.embeddings.register``) are in the server's registry: collections
    created over HTTP name a function, and the server re-creates it from its registry.
    A module that cannot be imported is a usage error (exit status 2)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure of the user's module: report it, do not serve
            raise CliError(
                f"--embeddings-module {module}: cannot import it: {type(exc).__name__}: {exc}",
                exit_code=2,
            ) from exc


def _open_sharded(args: argparse.Namespace) -> Any:
    """With ``--ray``: the sharded database at PATH (``keeldb.ray``); else None."""
    if not args.ray:
        if args.shards is not None or args.ray_address is not None:
            raise CliError("--shards and --ray-address need --ray", exit_code=2)
        return None
    if args.shards is None:
        raise CliError("--ray needs --shards N (fixed when the database is created)", exit_code=2)
    try:
        from keeldb.ray import ShardedDatabase
    except ImportError as exc:
        raise CliError(f"keeldb serve --ray needs the ray extra: {exc}") from exc
    return ShardedDatabase.open(
        args.path, shards=args.shards, address=args.ray_address, durability=args.durability
    )


def add_parser(sub: Any) -> None:
    """Register ``serve`` on the CLI's subparsers."""
    d = _defaults()
    p = sub.add_parser(
        "serve",
        help="serve a database over HTTP/JSON (needs the 'server' extra)",
        description="Serve the database at PATH over HTTP/JSON (API under /v1, OpenAPI at "
        "/openapi.json, docs at /docs, Prometheus metrics at /metrics). Stops on "
        "SIGTERM/SIGINT after finishing in-flight requests, then flushes and closes the "
        "database. API keys: --api-key, --keys-file and $KEELDB_API_KEY; without any, "
        "binding to a non-loopback address is refused unless --insecure.",
    )
    _add_access_options(p)
    _add_engine_options(p, d)
    _add_process_options(p)


def _add_access_options(p: Any) -> None:
    """``serve``'s address, keys and access options."""
    p.add_argument("path", metavar="PATH", help="database directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8321, help="port (default: 8321)")
    p.add_argument(
        "--api-key", action="append", metavar="KEY", help="an admin API key (repeatable)"
    )
    p.add_argument(
        "--keys-file",
        metavar="JSON",
        help='JSON list of {"key", "role", "workspaces"}; roles: admin, read-write, read-only',
    )
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without API keys"
    )
    p.add_argument(
        "--public-docs",
        action="store_true",
        help="serve /openapi.json and /docs without a key even when keys are configured",
    )
    p.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="directory POST /v1/backup (admin key) writes backups under, created if missing "
        "(default: none, backups over HTTP refused)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allow browser requests from ORIGIN (repeatable; default: CORS off)",
    )


def _add_engine_options(p: Any, d: Any) -> None:
    """``serve``'s durability, worker threads and request limits."""
    p.add_argument(
        "--durability",
        choices=["fsync", "flush", "none"],
        default="fsync",
        help="when a write is acknowledged (default: fsync)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=d.threads,
        help="worker threads for reads (searches, gets, counts; default: one per core, "
        f"at least 2: {d.threads} here)",
    )
    p.add_argument(
        "--write-threads",
        type=positive_int,
        default=d.write_threads,
        help=f"worker threads for writes, which mostly wait for fsync (default: {d.write_threads})",
    )
    p.add_argument(
        "--threads-per-request",
        type=positive_int,
        default=d.threads_per_request,
        help=f"BLAS/OpenMP threads one engine call may use (default: "
        f"{d.threads_per_request}; concurrency comes from --threads)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=d.max_body_bytes,
        help=f"largest request body (default: {d.max_body_bytes}; 413 above)",
    )
    p.add_argument(
        "--max-k", type=positive_int, default=d.max_k, help=f"largest k (default: {d.max_k})"
    )
    p.add_argument(
        "--max-ef", type=positive_int, default=d.max_ef, help=f"largest ef (default: {d.max_ef})"
    )
    p.add_argument(
        "--max-batch",
        type=positive_int,
        default=d.max_batch,
        help=f"most ids/vectors per upsert, get or delete, and the largest scan "
        f"limit (default: {d.max_batch})",
    )
    p.add_argument(
        "--max-query-batch",
        type=positive_int,
        default=d.max_query_batch,
        help=f"most queries per search_batch (default: {d.max_query_batch})",
    )
    p.add_argument(
        "--max-filter-depth",
        type=positive_int,
        default=d.max_filter_depth,
        help=f"deepest filter nesting (default: {d.max_filter_depth})",
    )


def _add_process_options(p: Any) -> None:
    """``serve``'s shutdown, logging and Ray options."""
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long shutdown waits for in-flight requests (default: 30)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default: info)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--embeddings-module",
        action="append",
        metavar="MODULE",
        help="import MODULE (repeatable) before serving, so the embedding functions it "
        "registers with keeldb.embeddings.register can be named by collections (the "
        "shipped ones, e.g. minilm, are always registered)",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="serve a sharded database on Ray (needs the 'ray' extra; see docs/scaling.md)",
    )
    p.add_argument(
        "--shards",
        type=positive_int,
        default=None,
        help="with --ray: the number of shards (fixed when the database is created)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="with --ray: 'auto' or host:port joins a Ray cluster (default: start a "
        "local Ray on 127.0.0.1)",
    )
    p.set_defaults(run=run_serve)


def _defaults() -> Any:
    """The default :class:`ServerConfig`, for help texts (imported lazily)."""
    from keeldb.server.config import ServerConfig

    return ServerConfig()
