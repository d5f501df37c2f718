"""OpenAIEmbedding against a local fake ``/v1/embeddings`` server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from keeldb.embeddings import EmbeddingFunctionError, OpenAIEmbedding, from_config
from keeldb.errors import RemoteError


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []
    mode = "ok"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if _Handler.mode == "error":
            self._send(429, {"error": {"message": "rate limited"}})
            return
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i), 1.0]}
            for i, t in enumerate(body["input"])
        ]
        if _Handler.mode == "shuffled":
            data.reverse()
        if _Handler.mode == "short":
            data = data[:-1]
        self._send(200, {"object": "list", "data": data, "model": body["model"]})

    def _send(self, status: int, obj: object) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.mode = "ok"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_embeds_in_batches_with_key_from_env(server: str, monkeypatch) -> None:
    monkeypatch.setenv("KEELDB_TEST_EMBED_KEY", "sekrit")
    fn = OpenAIEmbedding("emb-model", 3, base_url=server, api_key_env="KEELDB_TEST_EMBED_KEY",
                         batch_size=2)  # fmt: skip
    v = fn(["a", "bbb", "cc"])
    np.testing.assert_array_equal(v, [[1, 0, 1], [3, 1, 1], [2, 0, 1]])
    assert [r["path"] for r in _Handler.requests] == ["/v1/embeddings"] * 2
    assert _Handler.requests[0]["body"]["input"] == ["a", "bbb"]
    assert _Handler.requests[0]["body"]["model"] == "emb-model"
    assert _Handler.requests[0]["auth"] == "Bearer sekrit"
    assert "sekrit" not in json.dumps(fn.config())
    again = from_config("openai", fn.config())
    assert isinstance(again, OpenAIEmbedding) and again.base_url == server


def test_order_follows_index(server: str) -> None:
    _Handler.mode = "shuffled"
    v = OpenAIEmbedding("m", 3, base_url=server, api_key_env=None)(["a", "bb"])
    np.testing.assert_array_equal(v[:, 0], [1, 2])
    assert _Handler.requests[0]["auth"] is None


def test_http_error_and_malformed_responses(server: str) -> None:
    fn = OpenAIEmbedding("m", 3, base_url=server, api_key_env=None)
    _Handler.mode = "error"
    with pytest.raises(RemoteError, match="429"):
        fn(["a"])
    _Handler.mode = "short"
    with pytest.raises(EmbeddingFunctionError, match="covers 1 of 2"):
        fn(["a", "b"])
    with pytest.raises(EmbeddingFunctionError):
        OpenAIEmbedding("m", 4, base_url=server, api_key_env=None)(["a"])  # wrong dim


def test_unreachable_endpoint() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    fn = OpenAIEmbedding("m", 3, base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None,
                         timeout_s=2)  # fmt: skip
    with pytest.raises(RemoteError, match="unreachable"):
        fn(["a"])
