"""``keeldb text-search`` and ``keeldb hybrid-search``: one query from the shell.

Thin wrappers over ``Collection.text_search`` / ``Collection.hybrid_search`` (on a
database directory or, through :class:`keeldb.Client`, a server URL): the hits print as a
table (rank, id, score, the start of the document) or, with ``--json``, as a list of
``{"id", "score", "distance", "metadata", "document"}`` objects.

``hybrid-search`` takes the dense query as ``--vector '[0.1, ...]'`` (a JSON list), or
``--like ID`` (the stored vector of record ID: "more like this record, and matching these
words"), or neither when the collection has an embedding function (it embeds QUERY).

``keeldb search`` is the dense (vector) search: ``--text "..."`` (embedded by the
collection's embedding function), ``--vector`` or ``--like``; its table shows distances.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from keeldb.cli.common import (
    CliError,
    env_api_key,
    open_target,
    parse_filter,
    positive_int,
    print_json,
    print_table,
)

__all__ = ["add_parsers", "run_hybrid_search", "run_search", "run_text_search"]

_SNIPPET_CHARS = 60


def _snippet(document: str | None) -> str:
    """The start of a document on one line (``-`` when there is none)."""
    if document is None:
        return "-"
    text = " ".join(document.split())
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "…"


def _print_hits(hits: list[Any], as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {
                    "id": h.id,
                    "score": h.score,
                    "distance": h.distance,
                    "metadata": h.metadata,
                    "document": h.document,
                }
                for h in hits
            ]
        )
        return
    if not hits:
        print("no matches")
        return
    if hits[0].score is None:  # a vector search: distances, smaller = closer
        rows = [
            [str(rank), h.id, f"{h.distance:.4f}", _snippet(h.document)]
            for rank, h in enumerate(hits, 1)
        ]
        print_table(rows, ["RANK", "ID", "DISTANCE", "DOCUMENT"])
        return
    rows = [
        [str(rank), h.id, f"{h.score:.4f}", _snippet(h.document)] for rank, h in enumerate(hits, 1)
    ]
    print_table(rows, ["RANK", "ID", "SCORE", "DOCUMENT"])


def run_text_search(args: argparse.Namespace) -> int:
    """Print the BM25 top ``-k`` for QUERY in COLLECTION. Returns 0."""
    flt = parse_filter(args.filter)
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        col = db.get_collection(args.collection, workspace=args.workspace)
        hits = col.text_search(args.query, args.k, filter=flt)
    _print_hits(hits, args.json)
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Print the ``-k`` nearest records of COLLECTION to ``--text`` (embedded by the
    collection's embedding function), ``--vector`` or the vector of ``--like``. Returns 0.
    """
    flt = parse_filter(args.filter)
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        col = db.get_collection(args.collection, workspace=args.workspace)
        query = args.text if args.text is not None else _dense_query(col, args)
        hits = col.search(query, args.k, filter=flt)
    _print_hits(hits, args.json)
    return 0


def _dense_query(col: Any, args: argparse.Namespace) -> np.ndarray | None:
    """The dense side of a search: ``--vector``, the vector of ``--like``, or None (the
    collection's embedding function embeds the query)."""
    if args.vector is None and args.like is None:
        return None
    if args.vector is not None:
        try:
            value = json.loads(args.vector)
        except json.JSONDecodeError as exc:
            raise CliError(f"--vector is not valid JSON: {exc}", exit_code=2) from exc
        if not isinstance(value, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value
        ):
            raise CliError("--vector must be a JSON list of numbers", exit_code=2)
        return np.asarray(value, dtype=np.float32)
    (record,) = col.get([args.like])
    if record is None:
        raise CliError(f"--like: no record {args.like!r} in {args.collection}")
    vector: np.ndarray = record.vector
    return vector


def run_hybrid_search(args: argparse.Namespace) -> int:
    """Print the fused dense + BM25 top ``-k`` for QUERY in COLLECTION. Returns 0."""
    flt = parse_filter(args.filter)
    weights = None
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError as exc:
            raise CliError("--weights must be DENSE,TEXT (two numbers)", exit_code=2) from exc
    with open_target(args.path, api_key=env_api_key(args.api_key)) as db:
        col = db.get_collection(args.collection, workspace=args.workspace)
        hits = col.hybrid_search(
            args.query,
            args.k,
            vector=_dense_query(col, args),
            filter=flt,
            fusion=args.fusion,
            rrf_k=args.rrf_k,
            weights=weights,
        )
    _print_hits(hits, args.json)
    return 0


def _common(p: argparse.ArgumentParser, query: bool = True) -> None:
    p.add_argument("path", metavar="PATH", help="database directory, or server URL http://...")
    p.add_argument("collection", metavar="COLLECTION", help="collection name")
    if query:
        p.add_argument("query", metavar="QUERY", help="the words to search for")
    p.add_argument("-k", type=positive_int, default=10, help="hits to return (default: 10)")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
    p.add_argument("--workspace", "-w", default="default", help="workspace (default: default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--api-key", help="API key for a server URL (default: $KEELDB_API_KEY)")


def add_parsers(sub: Any) -> None:
    """Register ``text-search``, ``hybrid-search`` and ``search`` on the CLI's subparsers."""
    p = sub.add_parser(
        "text-search",
        help="full-text (BM25) search over a collection's documents",
        description="Rank the documents of COLLECTION against QUERY by BM25 and print "
        "the top -k (rank, id, score, start of the document). A document is found as "
        "soon as its upsert returned.",
    )
    _common(p)
    p.set_defaults(run=run_text_search)

    p = sub.add_parser(
        "hybrid-search",
        help="dense + full-text search fused into one ranking",
        description="Fuse the nearest neighbours of a vector (--vector, the vector of "
        "record --like, or without either QUERY embedded by the collection's embedding "
        "function) with the BM25 ranking of QUERY, by reciprocal rank (default) or "
        "normalised weighted scores, and print the top -k.",
    )
    _common(p)
    dense = p.add_mutually_exclusive_group()
    dense.add_argument("--vector", help="the dense query as a JSON list of numbers")
    dense.add_argument("--like", metavar="ID", help="use the stored vector of record ID")
    p.add_argument("--fusion", choices=["rrf", "weighted"], default="rrf", help="(default: rrf)")
    p.add_argument("--rrf-k", type=float, help="rrf's constant in 1/(rrf_k + rank) (default: 10)")
    p.add_argument("--weights", metavar="DENSE,TEXT", help="list weights (default: 1,1)")
    p.set_defaults(run=run_hybrid_search)

    p = sub.add_parser(
        "search",
        help="nearest-neighbour search: by text (embedding), vector or record",
        description="Print the -k records of COLLECTION nearest to --text (embedded by the "
        "collection's embedding function), --vector or the vector of record --like "
        "(rank, id, distance, start of the document).",
    )
    _common(p, query=False)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="a text, embedded by the collection's embedding function")
    query.add_argument("--vector", help="the query as a JSON list of numbers")
    query.add_argument("--like", metavar="ID", help="use the stored vector of record ID")
    p.set_defaults(run=run_search)
