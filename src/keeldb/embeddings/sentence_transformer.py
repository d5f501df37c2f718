"""Any sentence-transformers model, when that package (and torch) is installed.

KeelDB does not depend on it: creating the function without it raises
EmbeddingFunctionError. The model name must be loadable offline (a local path, or a
model already in the Hugging Face cache); KeelDB itself never downloads anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keeldb.embeddings.base import EmbeddingFunction, EmbeddingFunctionError, register

__all__ = ["SentenceTransformerEmbedding"]


@register("sentence_transformer")
class SentenceTransformerEmbedding(EmbeddingFunction):
    """``SentenceTransformer(model).encode(texts)`` as a KeelDB embedding function.

    ``normalize`` (default True) asks for unit vectors (right for ``cosine``/``ip``).
    ``dim`` is read from the model. ``device`` is passed through (default: the library's
    choice). Raises EmbeddingFunctionError when ``sentence_transformers`` is missing.
    """

    name = "sentence_transformer"

    def __init__(
        self, model: str, *, normalize: bool = True, batch_size: int = 32, device: str | None = None
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingFunctionError(
                "SentenceTransformerEmbedding needs the 'sentence-transformers' package "
                "(pip install sentence-transformers)"
            ) from exc
        self.model = model
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        self.device = device
        kwargs: dict[str, Any] = {} if device is None else {"device": device}
        self._model = SentenceTransformer(model, **kwargs)
        dim = self._model.get_sentence_embedding_dimension()
        if not isinstance(dim, int) or dim < 1:
            raise EmbeddingFunctionError(f"model {model!r} reports no embedding dimension")
        self.dim = dim

    def config(self) -> dict[str, Any]:
        """``{"model", "normalize", "batch_size", "device"}``."""
        return {
            "model": self.model,
            "normalize": self.normalize,
            "batch_size": self.batch_size,
            "device": self.device,
        }

    def _embed(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)
