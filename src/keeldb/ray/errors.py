"""The errors a sharded database adds to KeelDB's tree (``keeldb.errors``).

::

    KeelError
    └── ShardingError                               500 sharding_error
        ├── ShardUnavailableError                     503 shard_unavailable
        ├── ShardCountMismatchError                   409 shard_count_mismatch
        └── CrossShardTransactionError                400 cross_shard_transaction

They register their codes with the same ``__init_subclass__`` registry as every other
KeelDB error, so the HTTP server maps them to their status like any other. This module
needs neither Ray nor anything else beyond ``keeldb.errors``.
"""

from __future__ import annotations

from keeldb.errors import KeelError

__all__ = [
    "CrossShardTransactionError",
    "ShardCountMismatchError",
    "ShardUnavailableError",
    "ShardingError",
]


class ShardingError(KeelError):
    """Base of the errors only a sharded database raises. Also raised as such when a shard
    fails with something that is not a KeelDB error (a bug in the shard; the message names
    the shard and the original exception)."""

    code = "sharding_error"
    status = 500

    def __init__(self, message: str = "", *, shard: int | None = None) -> None:
        super().__init__(message)
        self.shard = shard


class ShardUnavailableError(ShardingError):
    """A shard's actor did not answer within the database's ``unavailable_timeout_s``:
    its process died and Ray could not restart it in time (for instance its node, the
    only one offering its ``keeldb_shard_<i>`` resource, is gone).

    ``shard`` is the shard's index; the message names it and its directory. Nothing is
    known about a write that failed this way on that shard: it may or may not have been
    applied there (and may still be applied when the shard comes back); writes by id are
    safe to retry (see docs/scaling.md).
    """

    code = "shard_unavailable"
    status = 503


class ShardCountMismatchError(ShardingError):
    """``ShardedDatabase.open`` was given a shard count other than the one the database
    was created with (recorded in every shard's directory): ids would be routed to the
    wrong shards, so the open is refused before anything is read or written."""

    code = "shard_count_mismatch"
    status = 409


class CrossShardTransactionError(ShardingError):
    """``transaction()`` on a sharded collection: writes are atomic per shard only, and a
    transaction across shards is refused rather than faked."""

    code = "cross_shard_transaction"
    status = 400
