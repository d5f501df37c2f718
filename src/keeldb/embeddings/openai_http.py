"""Embeddings from an OpenAI-compatible HTTP endpoint (``POST {base_url}/embeddings``).

Works with OpenAI and the many servers that speak its API (vLLM, llama.cpp's server,
Ollama's ``/v1``, LiteLLM, text-embeddings-inference). Standard library only
(``urllib``). The API key is read from an environment variable at call time and never
stored in the collection's config.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import orjson

from keeldb.embeddings.base import EmbeddingFunction, EmbeddingFunctionError, register
from keeldb.errors import RemoteError

__all__ = ["OpenAIEmbedding"]


@register("openai")
class OpenAIEmbedding(EmbeddingFunction):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint as an embedding function.

    ``base_url`` is the API root including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``),
    ``model`` the model name sent in each request, ``dim`` the vector size the model
    returns (checked on every response; sent as ``dimensions`` only when
    ``send_dimensions``). ``api_key_env`` names the environment variable holding the
    bearer token (unset = no Authorization header). Each batch is one request with a
    ``timeout_s`` limit. HTTP or network failures raise
    :class:`~keeldb.errors.RemoteError`; a malformed response raises
    EmbeddingFunctionError. Vectors are returned in input order (by ``index``).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        dim: int,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        batch_size: int = 128,
        timeout_s: float = 60.0,
        send_dimensions: bool = False,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise EmbeddingFunctionError("dim must be a positive integer")
        if not base_url.startswith(("http://", "https://")):
            raise EmbeddingFunctionError("base_url must be an http(s) URL")
        self.model = model
        self.dim = dim
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.batch_size = int(batch_size)
        self.timeout_s = float(timeout_s)
        self.send_dimensions = bool(send_dimensions)

    def config(self) -> dict[str, Any]:
        """Every constructor argument (the key's variable name, never the key)."""
        return {
            "model": self.model,
            "dim": self.dim,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "batch_size": self.batch_size,
            "timeout_s": self.timeout_s,
            "send_dimensions": self.send_dimensions,
        }

    def _embed(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.send_dimensions:
            body["dimensions"] = self.dim
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url + "/embeddings"
        req = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise RemoteError(f"embedding endpoint {url} answered {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteError(f"embedding endpoint {url} unreachable: {exc}") from exc
        return self._parse(raw, len(texts))

    def _parse(self, raw: bytes, n: int) -> np.ndarray:
        try:
            data = orjson.loads(raw)["data"]
            out = np.zeros((n, self.dim), dtype=np.float32)
            seen = np.zeros(n, dtype=bool)
            for item in data:
                i = int(item["index"])
                out[i] = np.asarray(item["embedding"], dtype=np.float32)
                seen[i] = True
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise EmbeddingFunctionError(f"malformed embeddings response: {exc}") from exc
        if not seen.all():
            raise EmbeddingFunctionError(
                f"embeddings response covers {int(seen.sum())} of {n} inputs"
            )
        return out
