"""Validation of names, ids, vectors, metadata and search parameters.

Everything a write carries is checked here, for the whole batch, before anything is logged
or applied; each failure raises an :class:`InvalidArgumentError` (or
:class:`DimensionMismatchError`) naming the offending item, so the collection is unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from keeldb.errors import DimensionMismatchError, InvalidArgumentError

__all__ = [
    "MAX_ID_BYTES",
    "METRICS",
    "check_index_params",
    "check_k",
    "check_name",
    "validate_documents",
    "validate_ids",
    "validate_metadata",
    "validate_query",
    "validate_vectors",
]

MAX_ID_BYTES = 512
METRICS = ("cosine", "l2", "ip")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(value: Any, what: str) -> str:
    """A workspace or collection name: ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`` (they become
    directory names; ``.`` and ``..`` cannot match since they start with a dot)."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InvalidArgumentError(
            f"invalid {what} name {value!r}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}$"
        )
    return value


def check_index_params(dim: Any, metric: Any, m: Any, ef_construction: Any, ef_search: Any) -> None:
    """Collection parameters: dim 1..65536, metric in METRICS, m 2..256,
    ef_construction 1..10000, ef_search 1..100000."""
    for name, value, lo, hi in (
        ("dim", dim, 1, 65536),
        ("m", m, 2, 256),
        ("ef_construction", ef_construction, 1, 10000),
        ("ef_search", ef_search, 1, 100000),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidArgumentError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if metric not in METRICS:
        raise InvalidArgumentError(f"metric must be one of {METRICS}, got {metric!r}")


def check_quantization(quantization: Any, metric: str) -> str:
    """``quantization`` None (the metric's default) or one of
    :data:`~keeldb.storage.manifest.QUANTIZATIONS`; returns it resolved."""
    from keeldb.storage.manifest import QUANTIZATIONS, default_quantization

    if quantization is None:
        return default_quantization(metric)
    if not isinstance(quantization, str) or quantization not in QUANTIZATIONS:
        raise InvalidArgumentError(
            f"quantization must be one of {QUANTIZATIONS} or None, got {quantization!r}"
        )
    return quantization


def check_k(
    k: Any, ef: Any, exact: Any = False, with_metadata: Any = True, with_documents: Any = True
) -> None:
    """``k`` >= 1 (at most 100000); ``ef`` None or >= 1; ``exact``, ``with_metadata`` and
    ``with_documents`` bools, and with ``exact=True`` no ``ef`` (an exact search walks no
    graph)."""
    if not isinstance(with_documents, bool):
        raise InvalidArgumentError(f"with_documents must be True or False, got {with_documents!r}")
    if not isinstance(exact, bool):
        raise InvalidArgumentError(f"exact must be True or False, got {exact!r}")
    if not isinstance(with_metadata, bool):
        raise InvalidArgumentError(f"with_metadata must be True or False, got {with_metadata!r}")
    if exact and ef is not None:
        raise InvalidArgumentError("ef has no meaning with exact=True: pass one or the other")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100_000:
        raise InvalidArgumentError(f"k must be an integer in [1, 100000], got {k!r}")
    if ef is not None and (
        isinstance(ef, bool) or not isinstance(ef, int) or not 1 <= ef <= 100_000
    ):
        raise InvalidArgumentError(f"ef must be None or an integer in [1, 100000], got {ef!r}")


def validate_ids(ids: Any, *, unique: bool = True) -> list[str]:
    """A list of non-empty str ids of at most 512 UTF-8 bytes, unique within the batch.

    ``ids`` is a sequence of str or a 1-d numpy array of str (``<U`` or object dtype);
    the result is always a fresh list of plain ``str``.
    """
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise InvalidArgumentError(
                f"ids must be a list or a 1-dimensional array of strings, got shape {ids.shape}"
            )
        out: list[Any] = ids.tolist()  # np.str_ items become str, bytes_ items bytes
    elif isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise InvalidArgumentError(f"ids must be a list of strings, got {type(ids).__name__}")
    else:
        out = list(ids)
    for i, id_ in enumerate(out):
        if not isinstance(id_, str):
            raise InvalidArgumentError(f"ids[{i}] must be a string, got {type(id_).__name__}")
        if not id_:
            raise InvalidArgumentError(f"ids[{i}] is empty")
        try:
            size = len(id_.encode())
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(f"ids[{i}] is not valid Unicode text: {exc}") from exc
        if size > MAX_ID_BYTES:
            raise InvalidArgumentError(f"ids[{i}] is {size} UTF-8 bytes, more than {MAX_ID_BYTES}")
    if unique and len(set(out)) != len(out):
        seen: set[str] = set()
        for i, id_ in enumerate(out):
            if id_ in seen:
                raise InvalidArgumentError(f"ids[{i}] {id_!r} appears more than once in the batch")
            seen.add(id_)
    return out


def validate_vectors(vectors: Any, n: int, dim: int, metric: str) -> np.ndarray:
    """An (n, dim) float32 array with finite values (and, under cosine, no zero vector),
    normalised to unit length under cosine. Always a fresh array (caller may keep it).

    An empty batch (``n == 0``) may be ``[]``, a (0,) or (0, 0) array (no width to
    check: what an empty JSON list decodes to) or a (0, dim) array; it validates to a
    (0, dim) array (a (0, other) array is still a dimension mismatch)."""
    arr = _as_float32(vectors, "vectors", f"a numeric (n, {dim}) array")
    if arr.ndim == 1 and n == 1 and arr.shape[0] == dim:
        arr = arr.reshape(1, dim)
    if n == 0 and arr.shape in ((0,), (0, 0)):
        # An empty batch: ``[]`` (or a (0,) array) has no width to check (issue 17).
        arr = arr.reshape(0, dim)
    if arr.ndim != 2:
        raise InvalidArgumentError(
            f"vectors must be 2-dimensional (n, {dim}), got shape {arr.shape}"
        )
    if arr.shape[0] != n:
        raise InvalidArgumentError(f"{arr.shape[0]} vectors for {n} ids: lengths disagree")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(f"vectors have dimension {arr.shape[1]}, collection has {dim}")
    # One pass: a NaN or infinite component makes the squared norm non-finite, and so
    # does a vector too large to square in float32.
    sq = np.einsum("ij,ij->i", arr, arr)
    finite = np.isfinite(sq)
    if not finite.all():
        bad = int(np.argmin(finite))
        if np.isfinite(arr[bad]).all():
            raise InvalidArgumentError(
                f"vectors[{bad}] is too large: its squared norm overflows float32"
            )
        raise InvalidArgumentError(f"vectors[{bad}] contains NaN or infinity")
    if metric == "cosine" and n:
        positive = sq > 0
        if not positive.all():
            bad = int(np.argmin(positive))
            raise InvalidArgumentError(
                f"vectors[{bad}] is a zero vector (or too small to normalise), "
                "which has no cosine direction"
            )
        arr /= np.sqrt(sq)[:, None]
    return arr


_NARROW_FLOATS = (np.dtype(np.float32), np.dtype(np.float16))


def _as_float32(values: Any, what: str, expected: str) -> np.ndarray:
    """``values`` as a fresh float32 array; a component outside float32's range is an
    :class:`InvalidArgumentError` naming its row (numpy would warn and store infinity)."""
    if isinstance(values, np.ndarray) and values.dtype in _NARROW_FLOATS:
        return np.array(values, dtype=np.float32, copy=True)  # cannot overflow: no errstate
    try:
        with np.errstate(over="raise"):
            return np.array(values, dtype=np.float32, copy=True)
    except FloatingPointError:
        pass
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"{what} must be {expected}: {exc}") from exc
    # Error path only: find the row to name.
    with np.errstate(over="ignore"):  # a float128 beyond float64 is out of range too
        wide = np.abs(np.array(values, dtype=np.float64))
    rows = np.argwhere(wide > np.finfo(np.float32).max)
    where = f"{what}[{int(rows[0][0])}]" if wide.ndim == 2 and len(rows) else what
    raise InvalidArgumentError(
        f"{where} has a component outside float32's range "
        f"(magnitude above {float(np.finfo(np.float32).max):.4g})"
    )


def validate_query(vectors: Any, dim: int, metric: str, *, single: bool) -> np.ndarray:
    """Query vector(s) as a (q, dim) float32 array, normalised under cosine."""
    arr = _as_float32(vectors, "query", "a numeric array")
    if single:
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise InvalidArgumentError(
                f"query must be one vector of length {dim}, got shape {arr.shape}"
            )
        arr = arr.reshape(1, -1)
    elif arr.ndim != 2:
        raise InvalidArgumentError(f"queries must be a (q, {dim}) array, got shape {arr.shape}")
    if arr.shape == (1, dim):
        # One query (the common call): the same checks and arithmetic as validate_vectors
        # (float32 squared norm, correctly rounded square root, float32 division) with
        # Python scalars in place of array reductions, a third of the cost.
        sq = float(np.einsum("ij,ij->i", arr, arr)[0])
        if math.isfinite(sq) and (sq > 0 or metric != "cosine"):
            if metric == "cosine":
                arr /= np.float32(math.sqrt(sq))
            return arr
    return validate_vectors(arr, arr.shape[0], dim, metric)


def validate_metadata(metadata: Any, n: int) -> tuple[list[dict[str, Any] | None], bytes]:
    """``None`` or a list of n entries, each None or a JSON object (str keys, JSON values,
    no NaN/inf). Returns deep copies (the caller's objects are never stored) and their
    compact JSON encoding (reused as the WAL's metadata block).

    numpy bools, integers and floats (scalars or 0-d arrays) are accepted and stored as
    the plain value numpy's ``.item()`` gives (``np.float32(0.1)`` is stored as
    0.10000000149011612, its exact value); other numpy values, arrays included, are not
    JSON values."""
    if metadata is None:
        return [None] * n, b"[" + b",".join([b"null"] * n) + b"]"
    if isinstance(metadata, dict | str | bytes) or not isinstance(metadata, Sequence):
        raise InvalidArgumentError(
            f"metadata must be a list of dicts (or None), got {type(metadata).__name__}"
        )
    items = list(metadata)
    if len(items) != n:
        raise InvalidArgumentError(f"{len(items)} metadata entries for {n} ids: lengths disagree")
    for i, m in enumerate(items):
        if m is not None and not isinstance(m, dict):
            raise InvalidArgumentError(
                f"metadata[{i}] must be a dict or None, got {type(m).__name__}"
            )
    # One C-speed round trip validates and copies the whole batch; a value JSON cannot
    # represent exactly (non-str key, tuple, set, NaN, custom object) fails or changes.
    try:
        # orjson rejects non-str keys, sets and foreign objects itself; NaN/inf (written as
        # null) and tuples (written as lists) do not survive the round trip unchanged.
        # numpy numbers go through _numpy_value (called only for them, so plain JSON
        # batches stay at C speed) and compare equal to the Python values they become.
        text = orjson.dumps(items, default=_numpy_value)
        copied = orjson.loads(text)
        same = copied == items
    except (TypeError, ValueError, RecursionError, orjson.JSONEncodeError):
        same = False
        copied = None
    if not same:
        for i, m in enumerate(items):
            problem = _json_problem(m, f"metadata[{i}]")
            if problem:
                raise InvalidArgumentError(problem)
        raise InvalidArgumentError("metadata is not representable as JSON")
    assert copied is not None
    return list(copied), text


def validate_documents(documents: Any, n: int) -> list[str | None] | None:
    """``None`` (the batch carries no documents: each record keeps its own) or a list of n
    entries, each a str or None (None keeps an existing record's document). Returns a new
    list."""
    if documents is None:
        return None
    if isinstance(documents, str | bytes | dict) or not isinstance(documents, Sequence):
        raise InvalidArgumentError(
            f"documents must be a list of strings (or None), got {type(documents).__name__}"
        )
    items = list(documents)
    if len(items) != n:
        raise InvalidArgumentError(f"{len(items)} documents for {n} ids: lengths disagree")
    for i, d in enumerate(items):
        if d is not None and not isinstance(d, str):
            raise InvalidArgumentError(
                f"documents[{i}] must be a str or None, got {type(d).__name__}"
            )
        if d is not None and _has_surrogate(d):
            raise InvalidArgumentError(f"documents[{i}] is not valid Unicode (a lone surrogate)")
    return items


def _has_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _numpy_value(value: Any) -> Any:
    """orjson's ``default`` hook: a numpy bool/integer/float scalar or 0-d array as the
    Python value ``.item()`` gives; anything else is not serialisable (TypeError)."""
    if isinstance(value, _NUMPY_NUMBERS) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf"
    ):
        item = value.item()
        if isinstance(item, bool | int | float):
            return item
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_NUMPY_NUMBERS = (np.bool_, np.integer, np.floating)


def _json_problem(value: Any, path: str, depth: int = 0) -> str | None:
    if depth > 64:
        return f"{path}: nested deeper than 64 levels"
    if isinstance(value, np.generic | np.ndarray):
        try:
            value = _numpy_value(value)
        except TypeError:
            hint = " (convert it with .tolist())" if isinstance(value, np.ndarray) else ""
            return f"{path}: {type(value).__name__} is not a JSON value{hint}"
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            return f"{path}: {value} does not fit in 64 bits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, list):
        for i, v in enumerate(value):
            p = _json_problem(v, f"{path}[{i}]", depth + 1)
            if p:
                return p
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}: key {k!r} is not a string"
            p = _json_problem(v, f"{path}.{k}", depth + 1)
            if p:
                return p
        return None
    return f"{path}: {type(value).__name__} is not a JSON value"
