"""Routing ids to shards: a stable hash of the id, modulo the fixed shard count.

Python's ``hash(str)`` is salted per process, so it cannot route: the router and a later
process must agree forever. The hash here is computed from the id's Unicode code points
(the UTF-32 values numpy stores for a ``str`` array), vectorised over the batch, one numpy
step per character position, so routing costs no Python loop per id::

    h = 0xcbf29ce484222325                       # FNV-1a 64 offset basis
    for c in code points of id:                  # trailing NUL characters excluded
        h = ((h ^ c) * 0x100000001b3) mod 2**64  # FNV-1a 64 step, one code point at a time
    h = fmix64(h)                                # MurmurHash3's 64-bit finaliser
    shard = h mod shard_count

``fmix64(h)``: ``h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33`` (all mod 2**64). The finaliser spreads FNV's
weak low bits so that a modulo by a small count is even. Changing any of this re-routes
existing ids: it is part of the on-disk contract (``docs/format.md``, "Sharded
databases"), named by ``ROUTING`` in every shard's record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ROUTING", "shard_of", "split_positions"]

ROUTING = "fnv1a64-codepoints-fmix64"

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S33)
    h = h * _M1
    h = h ^ (h >> _S33)
    h = h * _M2
    out: np.ndarray = h ^ (h >> _S33)
    return out


def shard_of(ids: Sequence[str], shard_count: int) -> np.ndarray:
    """The shard index (int64 array aligned with ``ids``) of each id.

    ``ids`` must be a sequence of ``str`` (the caller checks); any string hashes,
    including ones the engine will refuse (empty, too long), so refusal stays the
    engine's job. Deterministic across processes, machines and numpy versions.
    """
    if shard_count < 1:
        raise ValueError(f"shard_count must be >= 1, got {shard_count}")
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if shard_count == 1:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(ids, dtype=np.str_)
    width = arr.dtype.itemsize // 4
    codes = arr.view(np.uint32).reshape(n, width).astype(np.uint64)
    # numpy drops trailing NULs of str items; str_len agrees, so the hash never depends
    # on the batch's widest id.
    lengths = np.char.str_len(arr)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    for pos in range(width):
        live = lengths > pos
        h = np.where(live, (h ^ codes[:, pos]) * _FNV_PRIME, h)
    return (_fmix64(h) % np.uint64(shard_count)).astype(np.int64)


def split_positions(shards: np.ndarray, shard_count: int) -> dict[int, np.ndarray]:
    """For each shard that owns at least one item, the positions (ascending int64 array)
    of its items in the batch."""
    order = np.argsort(shards, kind="stable")
    counts = np.bincount(shards, minlength=shard_count)
    out: dict[int, np.ndarray] = {}
    start = 0
    for shard, count in enumerate(counts.tolist()):
        if count:
            out[shard] = order[start : start + count]
        start += count
    return out
