"""The text-search section of docs/benchmarks.md, from bench/text_peers.py's and
bench/text_engine.py's results (``bench/results/text_peers.json``, ``text_engine.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPRODUCE = (
    "Reproduce: `pip install -e '.[bench]'` then `python -m bench text-peers` (peers) and "
    "`python -m bench text` (KeelDB ingest and QPS against same-run baselines); "
    "`make bench` runs both before writing this page."
)


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def section_text(peers_json: Path, engine_json: Path) -> str:
    """Markdown: the peers table (SciFact) and KeelDB's engine figures, or how to make them."""
    from bench.text_peers import table

    lines = ["## Text search (BEIR SciFact)", ""]
    peers = _load(peers_json)
    if not peers:
        return "\n".join([*lines, f"No results yet. {REPRODUCE}", ""])
    lines += [
        "Same 5,183 abstracts with the shipped MiniLM vectors, same 809 claims; nDCG@10 "
        "(BEIR definition); single-query QPS on the shared 2-core machine, one system at a "
        "time (load average in the last column: under load the absolute rates fall for "
        'every system). "Found right after insert": one new document with a unique word '
        'inserted, then queried at once with no flush/optimize call; "gone": deleted, '
        "then queried at once. Chroma has no local BM25 (its `where_document` `$contains` "
        "answers the freshness check); its hybrid is n/a.",
        "",
        table(peers),
        "",
    ]
    engine = _load(engine_json)
    if engine:
        lines += ["KeelDB engine figures (`python -m bench text`, medians of interleaved runs):"]
        lines.append("")
        lines += [f"- `{k}`: " + json.dumps(v) for k, v in engine.items()]
        lines.append("")
    lines += [REPRODUCE, ""]
    return "\n".join(lines)
