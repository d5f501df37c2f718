"""The HTTP protocol spoken between ``keeldb serve`` (:mod:`keeldb.server`) and
:class:`keeldb.Client`.

Both sides import it; it imports neither of them, only numpy, the standard library and
``keeldb.errors`` / ``keeldb.types``, so the client works with the base install.

Modules: ``api`` (the URL paths and the API key variable), ``wire`` (vector encoding,
value types as JSON).
"""
