"""Run the API under uvicorn: ``keeldb serve`` calls :func:`serve`.

Shutdown: uvicorn handles SIGTERM and SIGINT by closing the listening socket (no new
connections), waiting up to ``graceful_timeout_s`` for in-flight requests to finish, then
running the app's lifespan shutdown, which drains the worker pool, flushes every
collection and closes the database. A second SIGINT forces an immediate exit; the
database's write-ahead log still holds every acknowledged write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from keeldb.errors import InvalidArgumentError, KeelError
from keeldb.server.config import ServerConfig, is_loopback

__all__ = ["check_bind", "serve"]

log = logging.getLogger("keeldb.server")


def check_bind(host: str, config: ServerConfig, insecure: bool) -> None:
    """Refuse to listen beyond this machine with no API keys unless ``insecure``.

    Raises :class:`InvalidArgumentError` explaining the two ways out.
    """
    if not is_loopback(host) and not config.keys.enabled and not insecure:
        raise InvalidArgumentError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could "
            "read and change every collection. Give --api-key / --keys-file / "
            "KEELDB_API_KEY, or pass --insecure if the network is trusted."
        )


@contextlib.contextmanager
def _quiet_after_shutdown() -> Iterator[None]:
    """Let a signal-driven graceful shutdown end in a normal return (exit status 0).

    uvicorn handles SIGTERM/SIGINT itself while serving, then re-raises the signal once it
    has shut down so the default action (death by signal, or KeyboardInterrupt) follows.
    The shutdown was already clean, so the re-raised signal lands on a no-op handler here
    and ``keeldb serve`` exits 0. Signal handlers can only be set on the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, lambda s, f: None) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8321,
    config: ServerConfig | None = None,
    durability: str = "fsync",
    insecure: bool = False,
    log_level: str = "info",
    access_log: bool = False,
    graceful_timeout_s: float = 30.0,
    database: Any = None,
) -> None:
    """Open the database at ``path`` and serve it over HTTP until SIGTERM/SIGINT.

    ``database``: serve this already open database (e.g. a ``keeldb.ray``
    ``ShardedDatabase``) instead of opening ``path``; it is closed the same way.

    Blocks. Returns after a clean shutdown (database flushed and closed). Raises
    :class:`InvalidArgumentError` for an unsafe bind (see :func:`check_bind`) and whatever
    ``keeldb.open`` raises (e.g. :class:`~keeldb.errors.DatabaseLockedError` when another
    process holds the database).
    """
    import uvicorn

    import keeldb
    from keeldb.server.app import create_app
    from keeldb.server.threads import limit_blas_threads

    cfg = config or ServerConfig()
    check_bind(host, cfg, insecure)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    limit_blas_threads(cfg.threads_per_request)  # this process is the server: see threads.py
    db: Any = database if database is not None else keeldb.open(path, durability=durability)
    try:
        app = create_app(db, cfg, close_db_on_shutdown=True)
        auth = f"{len(cfg.keys)} API key(s)" if cfg.keys.enabled else "no API keys (auth off)"
        log.info("keeldb: serving %s on http://%s:%d with %s", path, host, port, auth)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=log_level,
                access_log=access_log,
                server_header=False,
                timeout_graceful_shutdown=max(1, round(graceful_timeout_s)),
                lifespan="on",
            )
        )
        with _quiet_after_shutdown():
            server.run()
    finally:
        # The lifespan shutdown normally closed it; this covers a failed startup
        # (e.g. the port is taken). Closing twice is harmless.
        with contextlib.suppress(KeelError):
            db.close()
