"""The built-in derived-index kinds, registered when this module is imported (today the
full-text index, ``engine/text_index.py``). The engine asks for a collection's derived
indexes through :func:`indexes_for` from here, so that every built-in kind is registered
first; :mod:`keeldb.engine.derived` itself imports no kind (a kind imports it)."""

from __future__ import annotations

from keeldb.engine import text_index  # noqa: F401 - registers the full-text index
from keeldb.engine.derived import indexes_for

__all__ = ["indexes_for"]
