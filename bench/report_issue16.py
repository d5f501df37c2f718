"""Section 7 of docs/benchmarks.md: the benchmarks of issue 16 (generated predicate
families, every plan under load, fixed cost per query), from their own result files in
``bench/results/`` (``predicates-<family>.json``, ``under_load.json``, ``overhead.json``).

``python -m bench report`` includes it; ``python -m bench.report_issue16`` rewrites just
this section of docs/benchmarks.md in place (when the suite's full results are not at
hand), leaving the rest of the page as generated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "benchmarks.md"
HEAD = "## 9. Generated predicates, load, fixed cost per query (issue 16)"


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _spec(spec: Any) -> str:
    return "`" + json.dumps(spec, separators=(",", ":")).replace("|", "\\|") + "`"


def _predicates(path: Path) -> list[str]:
    r = json.loads(path.read_text())
    preds = r["predicates"]
    lines = [
        f"### 9.{1 if r['family'] == 'pypi' else 2}. Predicate family on `{r['family']}` data",
        "",
        f"{r['rows']:,} × {r['dim']} vectors (cosine, one HNSW segment), {r['queries']} "
        f"queries, {len(preds)} predicates generated with seed {r['seed']} "
        "(`bench/predicate_family.py`: conjunctions, disjunctions, negations, `$in`, `$nin`, "
        f"ranges, `$ne`, `$exists`; selectivity bands 0.1 %–90 %), `ef` = {r['ef']} (the first "
        "swept `ef` whose unfiltered recall@10 reached 0.95). Recall@10 against the exact "
        "filtered top 10 (numpy brute force over the rows matching the bench's own mask, "
        "tie-aware); QPS single query, default call; ÷ unfiltered = median over "
        f"{r['rounds']} rounds of (unfiltered pass time ÷ filtered pass time), passes "
        f"interleaved. Each predicate was first used on {r['warm']} queries (untimed). "
        f"Run {r['finished_utc']} UTC, load average {r['loadavg'][0]:.1f}.",
        "",
        *([f"*Note:* {r['note']}", ""] if r.get("note") else []),
        f"**{r['passed']} of {len(preds)}** predicates meet both targets (recall@10 ≥ 0.95, "
        "≥ 0.99 below 2 %; QPS ≥ 0.5× unfiltered).",
        "",
    ]
    rows = []
    for p in preds:
        ok = "yes" if p["pass"] else "**no**"
        rows.append(
            [
                p["name"],
                p["shape"],
                f"{p['selectivity']:.2%}",
                p["plan"],
                f"{p['recall']:.4f}",
                f"{p['qps']:,.0f}",
                f"{p['qps_ratio']:.2f}×",
                ok,
                _spec(p["spec"]),
            ]
        )
    lines.append(
        _table(
            [
                "id",
                "shape",
                "selectivity",
                "plan",
                "recall@10",
                "QPS",
                "÷ unfiltered",
                "both targets",
                "predicate",
            ],
            rows,
        )
    )
    lines.append("")
    return lines


def _load(path: Path) -> list[str]:
    r = json.loads(path.read_text())
    lines = [
        "### 9.3. Every plan under load",
        "",
        "Two processes spinning a core each run during every loaded round; rounds alternate "
        f"idle and loaded ({r['rounds']} each, medians), {r['queries']} queries, `ef` = "
        f"{r['ef']}, pypi 100k collection. Ratio = loaded QPS ÷ idle QPS. Raw faiss: "
        "KeelDB's own graph searched through faiss's Python API with faiss's default OpenMP "
        "threads (with an `IDSelectorBitmap` for filters); for the flat case (the first "
        "5,000 rows as one flat segment, when the run measured it), faiss `IndexFlatIP` "
        "over the same rows with its default threads. Targets: KeelDB ≥ 0.5× single, "
        f"≥ 0.4× batch for every plan: **{'PASS' if r['pass'] else 'FAIL'}**. Run "
        f"{r['finished_utc']} UTC.",
        "",
    ]
    rows = []
    for c in r["cases"]:
        rows.append(
            [c["case"], f"{c['plan_single']} / {c['plan_batch']}"]
            + [
                f"{c[k]['ratio']:.2f}× ({c[k]['idle_qps']:,.0f} → {c[k]['loaded_qps']:,.0f})"
                for k in ("keeldb_single", "keeldb_batch", "faiss_single", "faiss_batch")
            ]
        )
    lines.append(
        _table(
            [
                "case",
                "KeelDB plan (single / batch)",
                "KeelDB single",
                "KeelDB batch",
                "faiss single",
                "faiss batch",
            ],
            rows,
        )
    )
    return [*lines, ""]


def _overhead(path: Path) -> list[str]:
    r = json.loads(path.read_text())
    lines = [
        "### 9.4. Fixed cost per query, and the default call against raw faiss",
        "",
        "pypi-minilm prefixes, 384-d, cosine, one HNSW segment. *KeelDB time outside faiss* "
        "= per-query time of `col.search(v, k=10, ef=ef)` (default call, a metadata dict per "
        "hit) minus the per-query time of faiss's own search call (`index.search_c`, one "
        "thread, arrays allocated once) on **the same graph object at the same `efSearch`**, "
        "both timed over the same queries in interleaved rounds (median of per-round "
        "differences). It covers validation, planning, the thread policy, re-scoring the "
        "float16 graph's hits with float32 vectors, merging, ids and metadata. Single and "
        "batch ratios are KeelDB ÷ raw faiss `IndexHNSWFlat` (built in the same process, same "
        "m = 16 and ef_construction = 200) at the first `ef` where both reach recall@10 0.95 "
        f"(median of per-round ratios). Wall-clock figures, and the same from CPU time "
        "(`time.thread_time` around single-query passes, `time.process_time` around "
        "batches): on a busy shared machine the wall clock mostly measures waiting for a "
        f"core. Run {r['finished_utc']} UTC, load average {r['loadavg'][0]:.1f}.",
        "",
    ]
    rows = []
    for s in r["sizes"]:
        us = s["us_per_query"]
        rows.append(
            [
                f"{s['rows']:,}",
                str(s["ef"]),
                f"{us['keeldb']:.1f}",
                f"{us['graph']:.1f}",
                f"{s['overhead_us']:.1f}",
                f"**{s.get('overhead_cpu_us', float('nan')):.1f}**",
                f"{s['overhead_us_bare']:.1f}",
                f"{us['faiss_flat']:.1f}",
                f"{s['single_ratio']:.2f}×",
                f"{s['single_ratio_bare']:.2f}×",
                f"{s['batch_ratio']:.2f}×",
                f"{s.get('single_ratio_cpu', float('nan')):.2f}× / "
                f"{s.get('batch_ratio_cpu', float('nan')):.2f}×",
            ]
        )
    lines.append(
        _table(
            [
                "rows",
                "ef",
                "KeelDB µs/query",
                "faiss call on KeelDB's graph µs",
                "KeelDB outside faiss µs (wall)",
                "… (CPU time)",
                "… with_metadata=False µs",
                "raw IndexHNSWFlat µs",
                "single ÷ faiss",
                "single bare ÷ faiss",
                "batch ÷ faiss",
                "single / batch ÷ faiss by CPU time",
            ],
            rows,
        )
    )
    return [*lines, ""]


def section(results: Path = RESULTS) -> str:
    """The section's markdown from whatever result files exist under ``results``."""
    lines = [
        HEAD,
        "",
        "Reproduce: `python -m bench predicates` (both data families), `python -m bench load`, "
        "`python -m bench overhead`; `make bench` runs all three. The machine is shared: "
        "every figure is a ratio to a baseline measured in the same run, and each run's "
        "load average is given: on these 2 cores a load above 2 means the benchmark often "
        "waited for a core, and absolute QPS then fall far below sections 1-3's.",
        "",
    ]
    found = False
    for name in ("predicates-pypi.json", "predicates-clustered.json"):
        if (results / name).exists():
            lines += _predicates(results / name)
            found = True
    if (results / "under_load.json").exists():
        lines += _load(results / "under_load.json")
        found = True
    if (results / "overhead.json").exists():
        lines += _overhead(results / "overhead.json")
        found = True
    if not found:
        lines += ["No results yet: run the commands above.", ""]
    return "\n".join(lines)


def _subsections(body: str) -> dict[str, str]:
    """The ``### 9.x.`` subsections of a section body, by their number ("9.1." ...)."""
    out: dict[str, str] = {}
    parts = body.split("\n### ")
    for part in parts[1:]:
        out[part.split(" ", 1)[0]] = "### " + part.rstrip("\n") + "\n"
    return out


def splice(doc: Path = DOC, results: Path = RESULTS) -> None:
    """Replace (or insert before "## Failures and gaps") this section of ``doc``.

    A subsection whose result file is absent here (each benchmark is run on its own, and
    results are not committed) keeps its text from ``doc``."""
    text = doc.read_text()
    new = section(results)
    if HEAD in text:
        start = text.index(HEAD)
        end = text.index("\n## ", start + len(HEAD))
        old_subs = _subsections(text[start:end])
        new_subs = _subsections(new)
        if old_subs.keys() - new_subs.keys():
            merged = {**old_subs, **new_subs}
            intro = new.split("\n### ", 1)[0].replace("No results yet: run the commands above.", "")
            new = intro.rstrip("\n") + "\n\n" + "\n".join(merged[n] for n in sorted(merged))
        text = text[:start] + new + text[end:]
    else:
        at = text.index("## Failures and gaps")
        text = text[:at] + new + "\n" + text[at:]
    doc.write_text(text)


if __name__ == "__main__":
    splice()
    print(f"wrote section 9 of {DOC}", file=sys.stderr)
