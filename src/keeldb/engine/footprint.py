"""Where a collection's bytes are: resident (held in process memory) and on disk, per part
of each unit (``Collection.stats()``; how each figure is computed: ``docs/api.md``).

Resident bytes are of two kinds, added together per part:

* memory the process owns (numpy arrays, faiss's own vectors): their sizes;
* pages of memory-mapped files that are in the process's page tables right now: the
  ``Rss`` of the file's mappings in ``/proc/self/smaps``. A mapped file's bytes that were
  never read (or were evicted under memory pressure) are not resident. Where
  ``/proc/self/smaps`` does not exist (not Linux), mapped files count 0.

Parts (names of :attr:`keeldb.types.SegmentStats.parts`): ``vectors`` (float32 rows; the
memtable's arrays; ``l2`` norms cached for exact scans), ``graph`` (the HNSW file: graph
and the graph's copy of the vectors), ``ids``, ``metadata``, ``columns`` (filter
columns), ``text`` (documents and postings), ``filter_cache`` (cached filter masks and
compact copies), ``tombstones``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keeldb.storage.format import segment_file_name
from keeldb.types import PartBytes

if TYPE_CHECKING:
    from keeldb.engine.memtable import Memtable
    from keeldb.engine.segment import Segment

__all__ = ["mapped_resident", "memtable_parts", "segment_parts", "total_parts"]

# The memtable's estimate of its ids and metadata per row (Python objects).
MEMTABLE_ROW_OVERHEAD_BYTES = 200


def mapped_resident() -> dict[str, int]:
    """Resident bytes of each memory-mapped file of this process, by path (the ``Rss``
    of its mappings in ``/proc/self/smaps``, summed); empty where that is unreadable."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/smaps", "rb") as f:
            data = f.read()
    except OSError:
        return out
    path: str | None = None
    for line in data.split(b"\n"):
        if not line:
            continue
        first = line.split(None, 5)
        if len(first) >= 5 and b"-" in first[0] and not first[0].endswith(b":"):
            # a mapping header: address perms offset dev inode [path]
            path = first[5].strip().decode(errors="replace") if len(first) == 6 else None
        elif path is not None and first[0] == b"Rss:":
            out[path] = out.get(path, 0) + int(first[1]) * 1024
    return out


def _file(directory: str, name: str) -> tuple[str, int]:
    path = os.path.join(directory, name)
    try:
        return path, os.path.getsize(path)
    except OSError:
        return path, 0


def segment_parts(seg: Segment, rss: dict[str, int]) -> dict[str, PartBytes]:
    """Resident and on-disk bytes of each part of the sealed segment ``seg`` (``rss``:
    :func:`mapped_resident`)."""
    directory, sid = seg.directory, seg.segment_id

    def files(*exts: str) -> tuple[int, int]:
        resident = disk = 0
        for ext in exts:
            path, size = _file(directory, segment_file_name(sid, ext))
            resident += rss.get(path, 0)
            disk += size
        return resident, disk

    parts: dict[str, PartBytes] = {}
    resident, disk = files("vec")
    exact = seg._exact
    norms = exact.sq_norms if exact is not None else None
    parts["vectors"] = PartBytes(resident + (0 if norms is None else int(norms.nbytes)), disk)
    hnsw = seg.hnsw
    resident, disk = files("hnsw")
    parts["graph"] = PartBytes(resident + (hnsw.owned_bytes() if hnsw is not None else 0), disk)
    resident, disk = files("ids")
    sorted_ids = seg._sorted_ids
    owned = 0 if sorted_ids is None else int(sorted_ids[0].nbytes + sorted_ids[1].nbytes)
    parts["ids"] = PartBytes(resident + owned, disk)
    parts["metadata"] = PartBytes(*files("meta"))
    resident, disk = files("cols")
    columns = seg._columns
    owned = int(getattr(columns, "nbytes", 0)) if columns is not None else 0
    parts["columns"] = PartBytes(owned, disk)  # decoded into memory: the file is not mapped
    resident, disk = files("docs", "post")
    owned = sum(int(getattr(p, "nbytes", 0)) for p in seg.parts.values())
    if resident or disk or owned:  # present only when the segment has text
        parts["text"] = PartBytes(resident + owned, disk)
    parts["filter_cache"] = PartBytes(seg._filters.nbytes, 0)
    tomb_disk = 0
    if seg.persisted_tombstones:
        tomb_disk = _file(directory, seg.persisted_tombstones)[1]
    parts["tombstones"] = PartBytes(int(seg.dead.nbytes), tomb_disk)
    return parts


def memtable_parts(mem: Memtable) -> dict[str, PartBytes]:
    """Resident bytes of each part of the memtable ``mem`` (nothing of it is on disk but
    its WAL, which the collection reports as ``wal_bytes``)."""
    parts = {
        "vectors": PartBytes(int(mem.vectors.nbytes + mem.sq_norms.nbytes), 0),
        # ids and metadata are Python objects: estimated per row, as memory_bytes does
        "metadata": PartBytes(MEMTABLE_ROW_OVERHEAD_BYTES * mem.n, 0),
        "tombstones": PartBytes(int(mem.dead.nbytes), 0),
    }
    columns = mem.columns_if_built()
    if columns is not None:
        parts["columns"] = PartBytes(int(getattr(columns, "nbytes", 0)), 0)
    return parts


def total_parts(units: list[dict[str, PartBytes]]) -> dict[str, PartBytes]:
    """Per part name, the sums over ``units``."""
    out: dict[str, PartBytes] = {}
    for parts in units:
        for name, p in parts.items():
            have = out.get(name)
            out[name] = (
                p
                if have is None
                else PartBytes(
                    have.resident_bytes + p.resident_bytes, have.disk_bytes + p.disk_bytes
                )
            )
    return out
