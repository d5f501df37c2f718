"""Hybrid search: dense (vector) and BM25 candidates fused into one ranking.

Both sides run with the same filter, each to ``depth`` candidates (``DEFAULT_DEPTH`` =
100, measured in ``docs/text.md``), and are fused by id with
:func:`keeldb.text.rrf` (default, ``rrf_k`` = ``DEFAULT_RRF_K`` = 10) or
:func:`keeldb.text.weighted` (min-max normalised scores, distances flipped). The winners'
metadata and documents are then read with one ``get``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keeldb.engine.validation import check_k
from keeldb.errors import InvalidArgumentError
from keeldb.text.fusion import DEFAULT_DEPTH, DEFAULT_RRF_K, rrf, weighted
from keeldb.types import Hit

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["FUSIONS", "hybrid_search"]

FUSIONS = ("rrf", "weighted")


def check_fusion(fusion: Any, rrf_k: Any, weights: Any) -> list[float] | None:
    """Validate the fusion arguments; returns the weights as floats (None: equal)."""
    if fusion not in FUSIONS:
        raise InvalidArgumentError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if rrf_k is not None:
        if fusion != "rrf":
            raise InvalidArgumentError("rrf_k applies to fusion='rrf' only")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float) or not rrf_k >= 0:
            raise InvalidArgumentError(f"rrf_k must be a number >= 0, got {rrf_k!r}")
    if weights is None:
        return None
    if isinstance(weights, str) or not isinstance(weights, Sequence) or len(weights) != 2:
        raise InvalidArgumentError("weights must be two numbers: (dense, text)")
    out: list[float] = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0:
            raise InvalidArgumentError(f"weights must be numbers >= 0, got {weights!r}")
        out.append(float(w))
    return out


def hybrid_search(
    col: Collection,
    query: Any,
    k: Any,
    vector: Any,
    filter: Any,
    fusion: Any,
    rrf_k: Any,
    weights: Any,
    depth: int = DEFAULT_DEPTH,
) -> list[Hit]:
    """:meth:`keeldb.Collection.hybrid_search` (arguments of any shape, validated here):
    the top ``k`` of the fused dense and BM25 rankings (see the module docstring); each
    hit with ``score`` (the fused score, larger = better) and ``distance = -score``.
    """
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
    check_k(k, None)
    weights = check_fusion(fusion, rrf_k, weights)
    if vector is None:
        raise InvalidArgumentError(
            "hybrid_search needs vector= (the dense query) for this collection"
        )
    width = max(depth, k)
    dense = col.search(vector, width, filter=filter, with_metadata=False, with_documents=False)
    text = col.text_search(query, width, filter=filter, with_metadata=False, with_documents=False)
    lists = [[(h.id, h.distance) for h in dense], [(h.id, h.score or 0.0) for h in text]]
    if fusion == "rrf":
        k_rrf = DEFAULT_RRF_K if rrf_k is None else rrf_k
        fused = rrf(lists, rrf_k=k_rrf, depth=width, weights=weights, k=k)
    else:
        fused = weighted(lists, higher_is_better=[False, True], weights=weights, depth=width, k=k)
    ids = [str(key) for key, _ in fused]
    records = col.get(ids)
    hits: list[Hit] = []
    for (id_, score), rec in zip(fused, records, strict=True):
        if rec is not None:  # deleted since the searches ran
            hits.append(Hit(str(id_), -score, rec.metadata, rec.document, score))
    return hits
