"""``keeldb.ray``: sharded collections on Ray (extra ``keeldb[ray]``).

Each shard is an ordinary KeelDB database directory owned by one Ray actor; a router in
the caller's process hashes ids to shards, splits writes by shard and scatters searches,
merging the answers by (distance, id)::

    from keeldb.ray import ShardedDatabase

    with ShardedDatabase.open("/data/keeldb", shards=4) as sdb:
        col = sdb.create_collection("docs", dim=384)
        col.upsert(ids, vectors, metadata)
        hits = col.search(query, k=10, filter={"lang": "en"})

See docs/scaling.md: placement, failure behaviour, what scales and what does not.
"""

from __future__ import annotations

try:
    import ray as _ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("keeldb.ray needs Ray: pip install 'keeldb[ray]'") from exc

from keeldb.ray.collection import ShardedCollection
from keeldb.ray.database import ShardedDatabase
from keeldb.ray.errors import (
    CrossShardTransactionError,
    ShardCountMismatchError,
    ShardingError,
    ShardUnavailableError,
)
from keeldb.ray.results import PartialCount, PartialHits, ShardInfo

__all__ = [
    "CrossShardTransactionError",
    "PartialCount",
    "PartialHits",
    "ShardCountMismatchError",
    "ShardInfo",
    "ShardUnavailableError",
    "ShardedCollection",
    "ShardedDatabase",
    "ShardingError",
]
