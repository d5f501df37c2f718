"""A small deterministic embedding function for the client/server tests, registered as
``test-word-hash`` on import: the test imports it, and so does the server process
(``keeldb serve --embeddings-module wordhash_embedding`` with this directory on
``PYTHONPATH``). Texts sharing words are close (a normalised bag of crc32-hashed words)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from keeldb.embeddings import EmbeddingFunction, register

NAME = "test-word-hash"
HERE = str(Path(__file__).resolve().parent)


@register(NAME)
class WordHash(EmbeddingFunction):
    """A bag of hashed lower-cased words, L2-normalised (never a zero vector)."""

    name = NAME

    def __init__(self, dim: int = 16, batch_size: int = 4) -> None:
        self.dim = dim
        self.batch_size = batch_size

    def config(self) -> dict[str, Any]:
        """Its constructor's options."""
        return {"dim": self.dim, "batch_size": self.batch_size}

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
            out[i, 0] += 0.01
        normed: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normed
