"""Integrations of KeelDB with RAG frameworks, each in its own module and extra.

- :mod:`keeldb.integrations.langchain` — ``KeelDBVectorStore``, a LangChain
  ``VectorStore`` (``pip install 'keeldb[langchain]'``).
- :mod:`keeldb.integrations.llama_index` — ``KeelDBVectorStore``, a LlamaIndex
  ``BasePydanticVectorStore`` (``pip install 'keeldb[llama-index]'``).

Both reach a collection through :mod:`keeldb.integrations.backend`, so they work the same
against an embedded database (``path=`` or an open :class:`keeldb.Database`) and against a
server (``url=``, or ``keeldb.Client`` / ``keeldb.AsyncClient``). Importing this package
imports neither framework. See ``docs/integrations.md``.
"""
