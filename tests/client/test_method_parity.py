"""The clients are "the same methods" as the embedded API (issue 17 item 7).

Every public method of ``Database``, ``Collection`` and ``Transaction`` exists on
``Client`` / ``RemoteCollection`` / ``RemoteTransaction`` and on their async twins with
the same parameters (names, kinds, defaults), except the deliberate differences listed
here with the reason. A method added to the engine fails this test until the clients
have it or it is listed.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import keeldb
from keeldb.aclient import AsyncClient, AsyncRemoteCollection, AsyncRemoteTransaction
from keeldb.client import Client, RemoteCollection, RemoteTransaction
from keeldb.types import CollectionInfo

# Engine plumbing the database uses on its collections (public for the engine's own
# modules, not part of the documented API).
ENGINE_INTERNALS = {
    "derived",
    "embedder",
    "mark_damaged",
    "pinned_files",
    "writes",
    "start",
}
# The embedding function runs on the server (its registry re-creates it there): a
# remote collection has its name (``embedding_name``) and its analyser, not the function.
NOT_YET_REMOTE = {"embedding_function"}
# Where the files are and how the engine runs them: on the server's side.
SERVER_SIDE_STATE = {"config", "directory", "fs", "options", "path", "versions"}
ONLY_EMBEDDED = {
    "Collection": ENGINE_INTERNALS
    | SERVER_SIDE_STATE - {"path"}
    | {
        # What the server's open found: the server's log and `keeldb check` report it.
        "recovery_report",
        # Remote collections hold no server-side state; the server owns their lifetime.
        "close",
        # Callbacks would run in the server process, not the caller's.
        "on_insert",
        "on_search",
        "off_search",
    }
    | NOT_YET_REMOTE,
    # Closing without flushing: for a process that must not touch the files (forks).
    "Database": {"abandon"} | SERVER_SIDE_STATE - {"config", "directory", "versions"},
    "Transaction": set(),
}
ONLY_REMOTE = {
    "Collection": set(),
    "Database": {"health", "metrics", "url"},  # the server's liveness and Prometheus text
    "Transaction": set(),
}

# Same name, different parameters: the client never chooses a path on the server, only a
# name under its --backup-dir (and hard links are the server's business); compact's
# progress callback runs in the engine's process and cannot cross HTTP.
DIFFERENT_PARAMETERS = {("Database", "backup"), ("Collection", "compact")}

INFO = CollectionInfo("c", "default", 2, "l2", 0, 16, 200, 64, 0.0, "flat")


def _public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def _instances(tmp_path: Any) -> dict[str, tuple[Any, Any, Any]]:
    """(embedded, sync remote, async remote) instances of each kind (no network)."""
    db = keeldb.open(tmp_path / "db")
    col = db.create_collection("c", dim=2, metric="l2")
    client = Client("http://127.0.0.1:9")
    aclient = AsyncClient("http://127.0.0.1:9")
    rcol = RemoteCollection(client, INFO)
    acol = AsyncRemoteCollection(aclient, INFO)
    return {
        "Database": (db, client, aclient),
        "Collection": (col, rcol, acol),
        "Transaction": (col.transaction(), rcol.transaction(), acol.transaction()),
    }


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("kind", ["Database", "Collection", "Transaction"])
def test_the_clients_have_the_embedded_methods_with_the_same_parameters(
    kind: str, tmp_path: Any
) -> None:
    instances = _instances(tmp_path)
    embedded, remote, aremote = instances[kind]
    try:
        ours, theirs = _public(embedded), _public(remote)
        assert ours - theirs == ONLY_EMBEDDED[kind]
        assert theirs - ours == ONLY_REMOTE[kind]
        # The async twin: the same names (aclose for close), each method a coroutine.
        async_names = _public(aremote)
        assert async_names == theirs - {"close"} | ({"aclose"} if "close" in theirs else set())
        for name in sorted(theirs & ours):
            mine, sync = getattr(embedded, name), getattr(remote, name)
            if not inspect.ismethod(mine):  # an attribute (the analyser is callable)
                assert getattr(remote, name) == getattr(aremote, name) == mine, name
                continue
            asynchronous = getattr(aremote, "aclose" if name == "close" else name)
            assert _params(asynchronous) == _params(sync), name
            if (kind, name) not in DIFFERENT_PARAMETERS:
                assert _params(sync) == _params(mine), name
            # Staging a transaction's ops does no I/O; committing and every other call does.
            plain = name == "transaction" or (kind == "Transaction" and name != "commit")
            assert inspect.iscoroutinefunction(asynchronous) is not plain, name
    finally:
        instances["Database"][0].close()
        instances["Database"][1].close()


def test_transactions_are_context_managers_of_the_right_kind() -> None:
    assert hasattr(RemoteTransaction, "__enter__") and hasattr(RemoteTransaction, "__exit__")
    assert hasattr(AsyncRemoteTransaction, "__aenter__")
    assert hasattr(AsyncRemoteTransaction, "__aexit__")
    assert inspect.iscoroutinefunction(AsyncRemoteTransaction.commit)
