"""HTTP transports for :class:`keeldb.Client`: one request in, ``(status, body bytes)`` out.

:class:`PooledTransport` (the default) keeps a pool of standard-library
``http.client`` keep-alive connections. It costs the client about 0.22 ms of CPU per
search against 0.5 ms through httpx (measured against a local ``keeldb serve``): on a
small machine where clients and server share the cores, that CPU is throughput the server
never gets. :class:`HttpxTransport` wraps an httpx transport, for tests that mock the
network (``Client(url, transport=httpx.MockTransport(...))``).

Both raise :class:`~keeldb.errors.RemoteError` when no answer comes back: the server
unreachable (connection failures are retried twice, with a fresh connection), a timeout,
or a connection lost mid-request. A request that may have reached the server is never
retried.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

from keeldb.errors import InvalidArgumentError, RemoteError

__all__ = ["HttpxTransport", "PooledTransport", "Transport"]

CONNECT_RETRIES = 2
MAX_IDLE = 32  # idle connections kept per client


class Transport(Protocol):
    """What the client needs from HTTP."""

    def request(self, method: str, path: str, content: bytes | None) -> tuple[int, bytes]:
        """Send one request (``path`` below the base URL); the status and body bytes."""
        ...

    def close(self) -> None:
        """Close every connection; the transport cannot be used afterwards."""
        ...


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive connection was closed by the server (EOF, an error, or
    bytes nobody asked for waiting on it). A non-blocking peek: no ``select``, which
    cannot take descriptors above 1023."""
    sock = conn.sock
    if sock is None:
        return True
    timeout = sock.gettimeout()
    try:
        # Non-blocking for the peek: with a timeout set, recv would first wait for data.
        sock.setblocking(False)
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False  # nothing to read: alive and idle
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return True  # b"" (EOF) or unexpected bytes


def _early_answer(conn: http.client.HTTPConnection, method: str) -> tuple[int, bytes] | None:
    """After a failed send: the answer the server may have sent before closing (a 413
    for a body it would not read), or None."""
    sock = conn.sock
    if sock is None:
        return None
    try:
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, response.read()
    except (OSError, http.client.HTTPException, ValueError):
        return None


class PooledTransport:
    """Keep-alive ``http.client`` connections to one server, shared by threads (each
    connection serves one request at a time)."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"server URL must be http(s)://host[:port], got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError as exc:
            raise InvalidArgumentError(f"server URL has a bad port: {url!r}") from exc
        self._prefix = parts.path.rstrip("/")
        self._url = url
        self._headers = headers
        self._timeout = timeout_s
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def idle_connections(self) -> int:
        """Connections open and waiting for the next request (for tests and stats)."""
        with self._lock:
            return len(self._idle)

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        for attempt in range(CONNECT_RETRIES + 1):
            conn = cls(self._host, self._port, timeout=self._timeout)
            try:
                conn.connect()
                return conn
            except TimeoutError as exc:
                conn.close()
                raise RemoteError(f"cannot reach KeelDB at {self._url}: timed out") from exc
            except OSError as exc:
                conn.close()
                if attempt == CONNECT_RETRIES:
                    raise RemoteError(f"cannot reach KeelDB at {self._url}: {exc}") from exc
        raise AssertionError("unreachable")

    def _checkout(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._closed:
                raise RemoteError("this client is closed")
            while self._idle:
                conn = self._idle.pop()
                if not _dropped(conn):
                    return conn
                conn.close()
        return self._connect()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, content: bytes | None) -> tuple[int, bytes]:
        conn = self._checkout()
        try:
            conn.request(method, self._prefix + path, body=content, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError as exc:
            conn.close()
            raise RemoteError(f"{method} {self._url}{path}: timed out ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            early = _early_answer(conn, method) if isinstance(exc, OSError) else None
            conn.close()
            if early is not None:
                return early
            raise RemoteError(f"{method} {self._url}{path}: connection lost: {exc!r}") from exc
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, data

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class HttpxTransport:
    """Requests through an ``httpx`` transport (tests: ``httpx.MockTransport``)."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float, transport: Any) -> None:
        import httpx

        self._httpx = httpx
        self._url = url
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def request(self, method: str, path: str, content: bytes | None) -> tuple[int, bytes]:
        httpx = self._httpx
        try:
            response = self._http.request(method, path, content=content)
        except httpx.TimeoutException as exc:
            raise RemoteError(f"{method} {self._url}{path}: timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach KeelDB at {self._url}: {exc}") from exc
        return response.status_code, response.content

    def close(self) -> None:
        self._http.close()
