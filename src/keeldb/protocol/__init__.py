"""The HTTP protocol spoken between ``keeldb serve`` (:mod:`keeldb.server`) and
:class:`keeldb.Client`.

Both sides import it; it imports neither of them, only numpy, orjson, the standard library,
``keeldb.errors`` / ``keeldb.types`` and the engine's validation rules and backup report
(``calls``), so the client works with the base install.

Modules: ``api`` (the URL paths and the API key variable), ``wire`` (vector encoding,
value types as JSON), ``calls`` (the client side of each route: the request to send and
how to read its answer, executed by both ``keeldb.Client`` and ``keeldb.AsyncClient``).
"""
