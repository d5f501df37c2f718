"""Transactions: staged upserts and deletes applied all or nothing as one WAL record."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keeldb.engine.validation import validate_ids
from keeldb.errors import ClosedError
from keeldb.storage.records import Batch, DeleteOp

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["Transaction"]


class Transaction:
    """Stage writes with :meth:`upsert` / :meth:`delete`; :meth:`commit` applies them in
    order as one atomic batch (one WAL record), :meth:`rollback` discards them.

    Used as a context manager, the block's normal exit commits and an exception rolls
    back (and propagates). Each staged call is validated immediately, so a bad item raises
    at the call, before anything is committed. Reads inside the block do not see staged
    writes.
    """

    def __init__(self, collection: Collection) -> None:
        self._col = collection
        self._ops: Batch = []
        self._done = False

    def _check(self) -> None:
        if self._done:
            raise ClosedError("this transaction was already committed or rolled back")

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """Stage an upsert (same contract as :meth:`Collection.upsert`; without vectors
        the documents are embedded now, at the call)."""
        self._check()
        self._ops.append(self._col.writes.upsert_op(ids, vectors, metadata, documents))

    def delete(self, ids: Sequence[str]) -> None:
        """Stage a delete by ids."""
        self._check()
        self._ops.append(DeleteOp(list(dict.fromkeys(validate_ids(ids, unique=False)))))

    def commit(self) -> dict[str, int]:
        """Apply every staged operation atomically; returns counts (upserted, deleted,
        replaced). An empty transaction writes nothing."""
        self._check()
        self._done = True
        self._ops = [op for op in self._ops if op.ids]  # empty operations write nothing
        if not self._ops:
            return {"upserted": 0, "deleted": 0, "replaced": 0}
        return self._col._write(self._ops)

    def rollback(self) -> None:
        """Discard every staged operation (the collection never saw them)."""
        self._done = True
        self._ops = []

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
