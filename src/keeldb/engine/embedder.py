"""A collection's embedding function: recorded in its manifest, re-created on first use.

``create_collection(..., embedding=fn)`` records ``{"name": fn.name, "config":
fn.config()}`` in the collection's :class:`~keeldb.storage.manifest.CollectionConfig`
(:func:`embedding_spec`). When the collection is opened again the function is *not*
created at once: :class:`CollectionEmbedding` re-creates it through the registry
(:func:`keeldb.embeddings.from_config`) the first time it is needed — a vector-less
``upsert``, a string query to ``search``/``search_batch``, ``hybrid_search`` without
``vector=``. So a collection whose function is unknown or not installed in this process
still opens and serves everything that does not need it (reads, vector searches,
``text_search``, writes with vectors); what needs it raises
:class:`~keeldb.embeddings.EmbeddingFunctionError` naming the function, the registered
names and how to install it — never vectors from another model. The error is kept and
raised again on each later use (no retry storm through a failing import).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from keeldb.embeddings.base import EmbeddingFunction, EmbeddingFunctionError, available, from_config
from keeldb.errors import InvalidArgumentError
from keeldb.storage.manifest import CollectionConfig

__all__ = ["CollectionEmbedding", "embedding_spec"]


def embedding_spec(fn: Any) -> dict[str, Any]:
    """``{"name", "config"}`` recording ``fn`` (an :class:`EmbeddingFunction`) in a
    manifest. InvalidArgumentError when ``fn`` is not one, its name is not registered
    (it could not be re-created on open), its ``dim`` is not a positive int, or its
    config is not a JSON object."""
    if not isinstance(fn, EmbeddingFunction):
        raise InvalidArgumentError(
            f"embedding must be a keeldb.embeddings.EmbeddingFunction, got {type(fn).__name__}"
        )
    if fn.name not in available():
        raise InvalidArgumentError(
            f"embedding function name {fn.name!r} is not registered (registered: "
            f"{available()}); register its class with keeldb.embeddings.register so the "
            "collection can re-create it when opened"
        )
    if isinstance(fn.dim, bool) or not isinstance(fn.dim, int) or fn.dim < 1:
        raise InvalidArgumentError(f"embedding function {fn.name!r} has invalid dim {fn.dim!r}")
    config = fn.config()
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"config() of embedding function {fn.name!r} is not a dict")
    try:  # canonical JSON, so equal configs compare equal after a manifest round trip
        canonical = orjson.loads(orjson.dumps(config, option=orjson.OPT_SORT_KEYS))
    except TypeError as exc:
        raise InvalidArgumentError(
            f"config() of embedding function {fn.name!r} is not JSON: {exc}"
        ) from exc
    return {"name": fn.name, "config": canonical}


class CollectionEmbedding:
    """The embedding function of one collection (or none). Thread-safe.

    ``given`` is the instance passed to ``create_collection`` (used as is in this
    process); otherwise the recorded spec is re-created on first use.
    """

    def __init__(self, config: CollectionConfig, given: EmbeddingFunction | None = None) -> None:
        self.spec = config.embedding
        self.dim = config.dim
        self._fn = given
        self._error: EmbeddingFunctionError | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str | None:
        """The recorded function's name (None: the collection has none)."""
        return None if self.spec is None else str(self.spec["name"])

    def function(self) -> EmbeddingFunction:
        """The function, created on first call. EmbeddingFunctionError when the
        collection has none, or it cannot be created, or its dim disagrees."""
        if self._fn is not None:
            return self._fn
        if self.spec is None:
            raise EmbeddingFunctionError(
                "this collection has no embedding function: pass vectors (or create the "
                "collection with embedding=...)"
            )
        with self._lock:
            if self._fn is None:
                if self._error is None:
                    self._error = self._create()
                if self._error is not None:
                    raise self._error
            assert self._fn is not None
            return self._fn

    def _create(self) -> EmbeddingFunctionError | None:
        assert self.spec is not None
        name = self.spec["name"]
        try:
            fn = from_config(name, self.spec.get("config"))
        except EmbeddingFunctionError as exc:
            err = EmbeddingFunctionError(
                f"the collection's embedding function {name!r} cannot be re-created: {exc}"
            )
            err.__cause__ = exc
            return err
        if fn.dim != self.dim:
            return EmbeddingFunctionError(
                f"embedding function {name!r} re-created with dim {fn.dim}, but the "
                f"collection's dim is {self.dim}"
            )
        self._fn = fn
        return None

    def embed_documents(self, documents: Any, count: int) -> np.ndarray:
        """Vectors for an upsert given without vectors: every one of ``count``
        ``documents`` must be a str. A progress bar shows for long runs (the function's
        own rule: a terminal and more than 10 batches)."""
        if documents is None:
            raise InvalidArgumentError("upsert needs vectors, or documents to embed")
        if isinstance(documents, str) or not isinstance(documents, Sequence):
            raise InvalidArgumentError("documents must be a list of str (or None)")
        if len(documents) != count:
            raise InvalidArgumentError(f"got {len(documents)} documents for {count} ids")
        missing = [i for i, d in enumerate(documents) if not isinstance(d, str)]
        if missing:
            raise InvalidArgumentError(
                f"documents[{missing[0]}] is not a str: without vectors every record "
                "needs a document to embed"
            )
        fn = self.function()
        return fn(list(documents))

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Vectors (q, dim) of string queries (no progress bar)."""
        fn = self.function()
        return fn(list(queries), progress=False)


def is_text_query(query: Any) -> bool:
    """Whether a ``search`` argument is a string query."""
    return isinstance(query, str)


def is_text_batch(queries: Any) -> bool:
    """Whether a ``search_batch`` argument is a list of string queries (non-empty)."""
    return (
        isinstance(queries, list | tuple)
        and len(queries) > 0
        and all(isinstance(q, str) for q in queries)
    )
