"""The embedding-function protocol, its registry, and batching with a progress bar.

An embedding function maps texts to vectors: ``fn(texts) -> float32 array (n, dim)``.
It has a ``name`` (its key in the registry), a ``dim`` and a ``config()`` (a JSON object
of the arguments that re-create it): a collection stores ``(name, config)`` and calls
:func:`from_config` when it is opened. An unknown name, or a function whose dependencies
are not installed, raises :class:`EmbeddingFunctionError` — never a silent fallback that
would write vectors from another model.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

from keeldb.errors import InvalidArgumentError

__all__ = [
    "EmbeddingFunction",
    "EmbeddingFunctionError",
    "available",
    "from_config",
    "register",
]


class EmbeddingFunctionError(InvalidArgumentError):
    """An embedding function cannot be created or used: its name is not registered, its
    optional dependency (model package, ``sentence-transformers``) is not installed, its
    config is invalid, or it returned vectors of the wrong shape. Wire code
    ``invalid_argument`` (an :class:`~keeldb.errors.InvalidArgumentError`)."""


class EmbeddingFunction(ABC):
    """Base class of embedding functions.

    Subclasses set ``name`` (class attribute, registered with :func:`register`), implement
    :meth:`_embed` (one batch) and :meth:`config`, and set ``dim``. Calling the function
    splits ``texts`` into batches of ``batch_size``, checks every batch's shape and dtype,
    and shows a progress bar on stderr when ``progress`` is true (or, when it is None,
    when there are more than 10 batches and stderr is a terminal).
    """

    name: str = ""
    dim: int = 0
    batch_size: int = 32

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of one batch: float32-convertible array (len(texts), dim)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The JSON-serialisable arguments that re-create this function via
        ``from_config(self.name, config)`` (never secrets such as API keys)."""

    def __call__(
        self, texts: Sequence[str], *, progress: bool | None = None, stream: TextIO | None = None
    ) -> np.ndarray:
        """Embed ``texts`` (a list of strings): float32 array (len(texts), dim)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidArgumentError("texts must be a list of strings")
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(1, int(self.batch_size))
        bar = _bar(len(texts), step, self.name, progress, stream)
        for s in range(0, len(texts), step):
            part = texts[s : s + step]
            vecs = np.asarray(self._embed(part), dtype=np.float32)
            if vecs.shape != (len(part), self.dim):
                raise EmbeddingFunctionError(
                    f"embedding function {self.name!r} returned shape {vecs.shape}, "
                    f"expected {(len(part), self.dim)}"
                )
            out[s : s + len(part)] = vecs
            if bar is not None:
                bar.advance(len(part))
        if bar is not None:
            bar.close()
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, config={self.config()})"


def _bar(total: int, step: int, label: str, progress: bool | None, stream: TextIO | None) -> Any:
    if progress is False or (progress is None and total <= 10 * step):
        return None
    from keeldb.cli.progress import Progress  # a tiny stderr bar, no dependency

    out = stream or sys.stderr
    return Progress(total, f"embedding ({label})", stream=out, enabled=True if progress else None)


Factory = Callable[..., EmbeddingFunction]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory`` (a class or function taking the config's keys as
    keyword arguments) under ``name``. Re-registering a name replaces it (so an
    application can provide its own implementation)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("an embedding function name must be a non-empty string")

    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def from_config(name: str, config: dict[str, Any] | None = None) -> EmbeddingFunction:
    """Re-create the embedding function recorded as ``(name, config)``.

    Raises EmbeddingFunctionError when ``name`` is not registered (the message lists the
    registered names), or when creating it fails (a missing optional dependency, a bad
    config) — with the original exception chained.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise EmbeddingFunctionError(
            f"unknown embedding function {name!r}; registered: {available()} "
            "(register it with keeldb.embeddings.register before opening the collection)"
        )
    if config is not None and not isinstance(config, dict):
        raise EmbeddingFunctionError(f"config of embedding function {name!r} must be an object")
    try:
        fn = factory(**(config or {}))
    except EmbeddingFunctionError:
        raise
    except (ImportError, TypeError, ValueError, OSError) as exc:
        raise EmbeddingFunctionError(
            f"embedding function {name!r} is unavailable: {type(exc).__name__}: {exc}"
        ) from exc
    return fn
