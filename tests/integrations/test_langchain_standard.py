"""LangChain's own standard suite (``langchain-tests``) against KeelDBVectorStore, sync
and async, on an embedded database and on a server through keeldb.Client/AsyncClient."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")
from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from keeldb.integrations.langchain import KeelDBVectorStore  # noqa: E402
from keeldb.server.testing import ServerProcess  # noqa: E402


class TestEmbeddedStandard(VectorStoreIntegrationTests):
    """Embedded: a fresh database directory per test (``path=``)."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[KeelDBVectorStore]:  # type: ignore[override]
        store = KeelDBVectorStore(self.get_embeddings(), path=str(tmp_path / "db"))
        try:
            yield store
        finally:
            store.close()


class TestRemoteStandard(VectorStoreIntegrationTests):
    """Remote: a server started for the session; a new collection per test; sync calls
    through keeldb.Client, async ones through keeldb.AsyncClient (``url=``)."""

    @pytest.fixture()
    async def vectorstore(  # type: ignore[override]
        self, keel_server: ServerProcess
    ) -> AsyncIterator[KeelDBVectorStore]:
        name = f"lc-{uuid.uuid4().hex[:12]}"
        store = KeelDBVectorStore(self.get_embeddings(), url=keel_server.url, collection_name=name)
        try:
            yield store
        finally:
            store.drop()
            await store.aclose()
