"""Copy-on-write row masks: the dead-row masks that lock-free readers index with.

Searches read a unit's dead mask without a lock while the write path deletes and
overwrites rows. numpy's boolean indexing (``dist[:, dead] = inf``; ``match & ~dead``
then ``nonzero``) counts a mask's True entries, sizes a buffer by that count and reads the
mask again, with the GIL released: a mask changed in place meanwhile makes it write past
the buffer and corrupt the heap. So a published mask is never changed: the writer
publishes a new one (:func:`with_dead`), and every published mask is read-only
(:func:`read_only`), making an in-place write an error instead of a race.

Used by the memtable, sealed segments and the full-text postings (their dead masks).
"""

from __future__ import annotations

import numpy as np

__all__ = ["read_only", "with_dead"]


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only (returned for chaining)."""
    array.flags.writeable = False
    return array


def with_dead(dead: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A new read-only copy of the dead-row mask ``dead`` with ``rows`` set (``dead`` is
    not changed: readers may hold it). Costs one copy of the mask per call."""
    out = dead.copy()
    out[rows] = True
    return read_only(out)
