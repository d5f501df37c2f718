"""Metadata filters: a MongoDB-style filter language compiled to vectorised numpy masks.

Typical use by the engine::

    f = compile_filter({"lang": "en", "year": {"$gte": 2020}})  # InvalidArgumentError
    cols = MetadataColumns.build(metadatas)    # at seal time; cols.append(batch) in memory
    payload = cols.to_bytes()                  # stored in the segment
    cols = MetadataColumns.from_bytes(payload) # zero-copy; ValueError if malformed
    rows = f.mask(cols)                        # bool[len(cols)]

The language and its exact semantics are documented in docs/filtering.md.
"""

from keeldb.filtering.columns import MAX_ROWS, MetadataColumns
from keeldb.filtering.compiled import Filter, compile_filter
from keeldb.filtering.parse import MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_IN_VALUES
from keeldb.filtering.payload import FORMAT_VERSION

__all__ = [
    "FORMAT_VERSION",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_NODES",
    "MAX_IN_VALUES",
    "MAX_ROWS",
    "Filter",
    "MetadataColumns",
    "compile_filter",
]
