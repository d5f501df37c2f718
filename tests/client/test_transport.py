"""The client's pooled http.client transport against small stand-in servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keeldb.errors import InvalidArgumentError, RemoteError
from keeldb.transport import PooledTransport


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    requests: list[tuple[str, str, bytes]] = []
    peers: list[int] = []
    close_after = False
    drop_silently = False
    closed: threading.Event

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).requests.append((self.command, self.path, body))
        type(self).peers.append(self.client_address[1])
        data = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if type(self).close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        if type(self).close_after or type(self).drop_silently:
            self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Sets its handler class's ``closed`` event each time it has closed a connection."""

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.RequestHandlerClass.closed.set()  # type: ignore[attr-defined]


@pytest.fixture
def http_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Handler]]]:
    handler = type(
        "Handler",
        (_Handler,),
        {
            "requests": [],
            "peers": [],
            "close_after": False,
            "drop_silently": False,
            "closed": threading.Event(),
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer, prefix: str = "") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{prefix}"


def test_requests_reuse_one_connection_and_keep_the_path_prefix(http_server: Any) -> None:
    server, handler = http_server
    t = PooledTransport(_url(server, "/base"), {"X-Test": "1"}, 5.0)
    for i in range(5):
        assert t.request("POST", f"/p{i}", b"{}") == (200, b'{"ok":true}')
    assert t.idle_connections() == 1
    assert len(set(handler.peers)) == 1  # one TCP connection served all five
    assert [r[1] for r in handler.requests] == [f"/base/p{i}" for i in range(5)]
    t.close()
    with pytest.raises(RemoteError, match="closed"):
        t.request("GET", "/x", None)


def test_a_connection_closed_by_the_server_is_replaced(http_server: Any) -> None:
    server, handler = http_server
    handler.close_after = True  # the server closes after each answer
    t = PooledTransport(_url(server), {}, 5.0)
    for _ in range(3):
        assert t.request("GET", "/", None)[0] == 200
    assert len(handler.requests) == 3
    t.close()


def test_an_idle_connection_dropped_by_the_server_is_not_used(http_server: Any) -> None:
    """A keep-alive connection the server closed while idle (an idle timeout, a restart)
    is noticed before it is used: the request goes out on a fresh connection."""
    server, handler = http_server
    handler.drop_silently = True  # answer as keep-alive, then close anyway
    t = PooledTransport(_url(server), {}, 5.0)
    assert t.request("GET", "/first", None)[0] == 200
    assert t.idle_connections() == 1
    assert handler.closed.wait(30)  # the server has closed its end (its FIN is sent)
    time.sleep(0.05)  # and the FIN has crossed the loopback
    assert t.request("POST", "/second", b"{}")[0] == 200
    assert [r[1] for r in handler.requests] == ["/first", "/second"]
    t.close()


def test_unreachable_server_is_a_remote_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    t = PooledTransport(f"http://127.0.0.1:{port}", {}, 2.0)
    with pytest.raises(RemoteError, match="cannot reach"):
        t.request("GET", "/", None)


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        t = PooledTransport(f"http://127.0.0.1:{port}", {}, 0.3)
        with pytest.raises(RemoteError, match="timed out"):
            t.request("GET", "/", None)


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8321", "http://", "http://h:99999"])
def test_bad_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        PooledTransport(url, {}, 1.0)


def test_the_client_needs_no_server_dependencies() -> None:
    """README: keeldb.Client works on the base install (no FastAPI, httpx, pydantic)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('fastapi', 'httpx', 'starlette', 'uvicorn',"
        " 'pydantic'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import keeldb\n"
        "keeldb.Client('http://127.0.0.1:9').close()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_an_early_answer_to_an_unread_large_body_is_returned() -> None:
    """Review finding: a server refusing a large body (413) and closing without reading
    it made the send fail (EPIPE/ECONNRESET) and the 413 was lost as a RemoteError."""
    answer = (
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: 51\r\nconnection: close\r\n\r\n"
        b'{"error":"payload_too_large","message":"too large"}'
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def refuse() -> None:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        conn.close()  # unread body bytes: the kernel answers the client with RST

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    t = PooledTransport(f"http://127.0.0.1:{listener.getsockname()[1]}", {}, 5.0)
    try:
        status, data = t.request("POST", "/upsert", b"x" * (64 << 20))
    finally:
        t.close()
        listener.close()
    assert status == 413 and b"payload_too_large" in data


def test_a_body_over_the_servers_limit_is_payload_too_large(tmp_path: Any) -> None:
    """Against a real server: the 413 it sends before closing reaches the caller as
    PayloadTooLargeError, not as a lost connection."""
    import numpy as np

    from keeldb import Client
    from keeldb.errors import PayloadTooLargeError
    from keeldb.server.testing import ServerProcess

    with ServerProcess(tmp_path / "db", args=["--max-body-bytes", "65536"]) as srv:
        with Client(srv.url) as client:
            col = client.create_collection("c", dim=8)
            with pytest.raises(PayloadTooLargeError):
                col.upsert([f"r{i}" for i in range(60_000)], np.ones((60_000, 8)))
            col.upsert(["ok"], np.ones((1, 8)))  # the client recovers
            assert col.count() == 1


class _Scripted:
    """A raw-socket server: for each connection, reads one request head (and its body),
    then sends the next scripted answer bytes; ``None`` closes without answering."""

    def __init__(self, answers: list[bytes | None], close_after: bool = False) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.close_after = close_after
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while self.answers:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" not in data:
                        break
                    head, _, data = data.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(data) < length:
                        data += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + data[:length])
                    data = data[length:]
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.close_after:
                        break

    def close(self) -> None:
        self.listener.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_answers_framed_every_way_are_read() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after 100")
    split_head = _ok(b"x" * 300_000)  # bigger than one recv
    srv = _Scripted([chunked, interim, split_head, _ok(b"", b"X-Empty: \r\n")])
    t = PooledTransport(srv.url, {"Authorization": "Bearer k"}, 5.0)
    try:
        assert t.request("POST", "/a", b"{}") == (200, b"hello world")
        assert t.request("GET", "/b", None) == (200, b"after 100")
        assert t.request("POST", "/c", b"y" * 400_000) == (200, b"x" * 300_000)
        assert t.request("GET", "/d", None) == (200, b"")
        assert t.idle_connections() == 1  # all four on one keep-alive connection
    finally:
        t.close()
        srv.close()
    first = srv.requests[0]
    assert first.startswith(b"POST /a HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in first and b"\r\nContent-Length: 2\r\n" in first
    assert first.endswith(b"\r\n\r\n{}")
    assert b"Content-Length" not in srv.requests[1]  # a GET without a body
    assert srv.requests[2].endswith(b"y" * 400_000)


def test_an_http10_answer_without_length_is_read_to_the_end() -> None:
    srv = _Scripted([b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil EOF"], True)
    t = PooledTransport(srv.url, {}, 5.0)
    try:
        assert t.request("GET", "/", None) == (200, b"until EOF")
        assert t.idle_connections() == 0  # the connection ended with the body
    finally:
        t.close()
        srv.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
        None,  # closes without a word
    ],
)
def test_malformed_or_cut_answers_are_remote_errors(answer: bytes | None) -> None:
    srv = _Scripted([answer], close_after=True)
    t = PooledTransport(srv.url, {}, 5.0)
    try:
        with pytest.raises(RemoteError, match="connection lost"):
            t.request("POST", "/x", b"{}")
        assert t.idle_connections() == 0
    finally:
        t.close()
        srv.close()


def test_bytes_after_an_answer_keep_the_connection_out_of_the_pool() -> None:
    srv = _Scripted([_ok(b"one") + b"HTTP/1.1 200 OK\r\n", _ok(b"two")])
    t = PooledTransport(srv.url, {}, 5.0)
    try:
        assert t.request("GET", "/1", None) == (200, b"one")
        assert t.idle_connections() == 0  # unasked-for bytes: never reused
        assert t.request("GET", "/2", None) == (200, b"two")
    finally:
        t.close()
        srv.close()


@pytest.mark.parametrize(
    "headers", [{"Authorization": "Bearer a\r\nX-Evil: 1"}, {"X\nY": "1"}, {"K": "\u20ac"}]
)
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError):
        PooledTransport("http://127.0.0.1:9", headers, 1.0)


def test_host_header_for_ipv6_long_and_international_names() -> None:
    from keeldb.transport import _Http11Connection

    assert _Http11Connection("::1", 9, 1.0)._fixed_headers == b"Host: [::1]:9\r\n"
    long_name = "a" * 70  # one label over 63 characters: still sent as given
    assert (
        _Http11Connection(long_name, 80, 1.0)._fixed_headers == f"Host: {long_name}:80\r\n".encode()
    )
    assert _Http11Connection("bücher.example", 80, 1.0)._fixed_headers == (
        b"Host: xn--bcher-kva.example:80\r\n"
    )
