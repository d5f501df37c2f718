"""Value types of the sharded API: shard descriptions and explicitly partial answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PartialCount", "PartialHits", "ShardInfo"]


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One shard, as :meth:`ShardedDatabase.shards` sees it now.

    ``directory`` is the path on the host running the shard; ``node`` the Ray node id and
    ``host`` the host name of that process, ``pid`` its process id. ``alive`` is False
    when the shard did not answer within the database's ``unavailable_timeout_s``; then
    ``node``, ``host``, ``pid`` and ``rows`` are None. ``rows`` counts live records over
    every collection of the shard.
    """

    index: int
    directory: str
    alive: bool
    node: str | None
    host: str | None
    pid: int | None
    rows: int | None


class PartialHits(list[Any]):
    """A search answer made with ``allow_partial=True``: a plain list of hits (or, for
    ``search_batch``, of hit lists) plus ``missing_shards``, the indices of the shards
    that did not answer (empty when every shard did). Hits stored on a missing shard are
    absent: the answer is the top k of the shards that answered."""

    missing_shards: tuple[int, ...]

    def __init__(self, items: Any = (), missing_shards: tuple[int, ...] = ()) -> None:
        super().__init__(items)
        self.missing_shards = missing_shards

    @property
    def partial(self) -> bool:
        """Whether some shard's records are missing from this answer."""
        return bool(self.missing_shards)


class PartialCount(int):
    """A count made with ``allow_partial=True``: an ``int`` (the sum over the shards that
    answered) plus ``missing_shards`` (see :class:`PartialHits`)."""

    missing_shards: tuple[int, ...]

    def __new__(cls, value: int, missing_shards: tuple[int, ...] = ()) -> PartialCount:
        obj = super().__new__(cls, value)
        obj.missing_shards = missing_shards
        return obj

    @property
    def partial(self) -> bool:
        """Whether some shard's records are missing from this count."""
        return bool(self.missing_shards)
