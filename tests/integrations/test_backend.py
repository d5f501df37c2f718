"""keeldb.integrations.backend: the collection layer both framework stores share."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError
from keeldb.integrations.backend import CollectionBackend
from keeldb.server.testing import ServerProcess


def test_importing_the_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, keeldb.integrations, keeldb.integrations.backend, "
        "keeldb.integrations.llama_filters; "
        "assert not any(m.split('.')[0] in ('langchain_core', 'llama_index') "
        "for m in sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"path": "x", "url": "http://127.0.0.1:1"},
        {"path": "x", "async_client": object()},
        {"path": "x", "metric": "dot"},
        {"path": "x", "batch_size": 0},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, tmp_path: Path) -> None:
    if "path" in kwargs:
        kwargs["path"] = str(tmp_path / "db")
    with pytest.raises(InvalidArgumentError):
        CollectionBackend(collection_name="c", **kwargs)


@pytest.mark.parametrize("where", ["embedded", "remote"])
async def test_batches_lazy_creation_and_scan(where: str, tmp_path: Path, request) -> None:
    if where == "embedded":
        b = CollectionBackend(collection_name="c", path=str(tmp_path / "db"), batch_size=3)
    else:
        server: ServerProcess = request.getfixturevalue("keel_server")
        name = f"b-{uuid.uuid4().hex[:10]}"
        b = CollectionBackend(collection_name=name, url=server.url, batch_size=3)
    try:
        # before the first write: nothing, and no collection is created
        assert b.search([1.0, 0.0], 3) == [] and await b.asearch([1.0, 0.0], 3) == []
        assert b.get(["a"]) == [None] and b.delete(["a"]) == 0 and b.scan() == []
        assert b.collection() is None
        ids = [f"r{i}" for i in range(8)]
        vecs = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        docs = [f"doc {i}" for i in range(8)]
        b.upsert(ids, vecs, [{"i": i} for i in range(8)], docs)  # three batches
        assert b.collection().dim == 2
        assert [r.id for r in b.scan()] == ids
        assert [r.id for r in b.scan(limit=5)] == ids[:5]
        assert [r.id for r in await b.ascan({"i": {"$gte": 6}})] == ["r6", "r7"]
        assert [r.document for r in await b.aget(ids)] == docs
        await b.aupsert(["r9"], vecs[:1], [None], ["nine"])
        assert b.delete(ids[:7]) == 7 and await b.adelete(filter={}) == 2
        assert b.scan() == []
    finally:
        if where == "remote":
            b.drop()
        await b.aclose()


def test_a_database_passed_in_stays_open(tmp_path: Path) -> None:
    with keeldb.open(str(tmp_path / "db")) as db:
        b = CollectionBackend(collection_name="c", client=db)
        b.upsert(["a"], [[1.0, 0.0]], [None], ["x"])
        b.close()
        assert db.get_collection("c").count() == 1  # still usable
