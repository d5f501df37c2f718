"""Resolving "keep the existing record's" metadata and documents in an upsert batch.

An upsert entry whose metadata (or document) is None keeps the existing record's. The
collection resolves those entries to the values they keep *before* the batch is logged,
so a WAL record never depends on state that a maintenance commit may have persisted
ahead of it (see :func:`resolve_kept`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keeldb.engine.state import State
from keeldb.engine.unit import Unit
from keeldb.storage.records import Batch, DeleteOp, UpsertOp

__all__ = ["resolve_kept"]

Locate = Callable[[State, list[str]], list[tuple[Unit, int] | None]]


def resolve_kept(state: State, batch: Batch, locate: Locate) -> None:
    """Replace metadata and documents None ("keep the existing record's") by what they
    keep, before the batch is logged (write lock held).

    A WAL record must not depend on state that a maintenance commit can persist ahead
    of it: a merge or vacuum writes the old row's tombstone while the record is still
    past the checkpoint, and replay after a crash then found no live old row and stored
    ``{}``. Resolved records replay to the same result whatever is already persisted.
    """
    effect: dict[str, dict[str, Any] | None] = {}  # earlier ops of the batch (None: deleted)
    effect_doc: dict[str, str | None] = {}
    docs_exist = _has_documents(state) or any(
        isinstance(op, UpsertOp) and op.documents is not None for op in batch
    )
    for op in batch:
        if isinstance(op, DeleteOp):
            effect.update(dict.fromkeys(op.ids))
            effect_doc.update(dict.fromkeys(op.ids))
            continue
        todo = [i for i, meta in enumerate(op.metadata) if meta is None]
        given = op.documents if op.documents is not None else [None] * len(op.ids)
        todo_doc = [i for i, d in enumerate(given) if d is None] if docs_exist else []
        need = sorted(set(todo) | set(todo_doc))
        lookup = [op.ids[i] for i in need if op.ids[i] not in effect]
        found = dict(zip(lookup, locate(state, lookup), strict=True)) if lookup else {}
        if todo:
            for i in todo:
                id_ = op.ids[i]
                loc = found.get(id_)
                if id_ in effect:
                    kept = effect[id_]
                else:
                    kept = None if loc is None else loc[0].metadata_at(loc[1])
                op.metadata[i] = {} if kept is None else kept
            op.metadata_json = None  # encoded again, with the resolved metadata
        if todo_doc:
            docs = list(given)
            for i in todo_doc:
                id_ = op.ids[i]
                loc = found.get(id_)
                if id_ in effect_doc:
                    docs[i] = effect_doc[id_]
                elif loc is not None:
                    docs[i] = loc[0].documents_of([loc[1]])[0]
            op.documents = docs if any(d is not None for d in docs) else None
        effect.update(zip(op.ids, op.metadata, strict=True))
        if docs_exist:
            final = op.documents if op.documents is not None else [None] * len(op.ids)
            effect_doc.update(zip(op.ids, final, strict=True))


def _has_documents(state: State) -> bool:
    """Whether any unit of ``state`` stores a document."""
    return any(m.document_count for m in state.memtables) or any(
        s.has_documents for s in state.segments
    )
