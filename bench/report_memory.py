"""The memory sections of ``docs/benchmarks.md``: quantised graphs and past RAM.

``report.write`` includes them; ``python -m bench.report_memory`` rewrites just these two
sections of an existing ``docs/benchmarks.md`` from ``bench/results/quantization*.json``
and ``bench/results/past_ram.json`` (their runs are separate from the suite's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
QUANT_HEAD = "## 7. Quantised graphs"
PAST_RAM_HEAD = "## 8. Past RAM"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def section_quantization(paths: list[Path]) -> str:
    """Quantised graphs vs raw faiss from ``bench/quantization.py`` result files."""
    lines = [QUANT_HEAD, ""]
    runs = [json.loads(p.read_text()) for p in paths if p.exists()]
    if not runs:
        return "\n".join([*lines, "No result: run `python -m bench.quantization`.", ""])
    lines += [
        "From `python -m bench.quantization` (pypi-minilm, 384-d, cosine; m = 16, "
        "ef_construction = 200; single queries, KeelDB's default call against raw faiss "
        "`IndexHNSWFlat`, passes interleaved; ratio = median of per-round ratios at the "
        "first swept ef where both reach recall@10 0.95). Resident bytes per vector are "
        "`stats()` of the HNSW segments after the sweep: the graph part, every part but "
        "the float32 vectors (what must stay in memory), and the float32 vectors' pages "
        "the re-scoring faulted in (evictable page cache). Ingest = `upsert` in batches of "
        "1,000 (fsync) + `compact()`, against the faiss build of the same rows timed in the "
        "same run: once per size, before the first kind (so later kinds' ingest ratios span "
        "more load drift), or before each kind with `--rebuild-faiss`. The machine is 2 "
        "cores shared with other jobs (the 2026-12-02 run: load average 13-17 throughout, "
        "absolute QPS a twentieth of an idle machine's): compare ratios, not absolute "
        "figures, and repeat before trusting one.",
        "",
    ]
    rows = []
    for run in runs:
        for size in run["sizes"]:
            for kind, r in size["kinds"].items():
                c = r["first_common"]
                fp = r["footprint"]
                rows.append(
                    [
                        f"{size['rows']:,} `{kind}` ({run['started']})",
                        "—" if c is None else str(c["ef"]),
                        "—" if c is None else f"{c['keeldb_recall']:.4f} / {c['faiss_recall']:.4f}",
                        "—" if c is None else f"{c['keeldb_qps']:,.0f} / {c['faiss_qps']:,.0f}",
                        "—" if c is None else f"**{c['qps_ratio']:.2f}×**",
                        f"{fp['graph_resident_per_vector']:,.0f}",
                        f"**{fp['resident_without_vectors_per_vector']:,.0f}**",
                        f"{fp['vectors_resident_per_vector']:,.0f}",
                        f"{fp['faiss_flat_bytes_per_vector']:,.0f}",
                        f"{r['keeldb_indexed_s']:.1f} / {r['faiss_build_s']:.1f} = "
                        f"**{r['ingest_ratio']:.2f}×**",
                    ]
                )
    lines.append(
        _table(
            [
                "rows, quantization (run)",
                "ef",
                "recall@10 KeelDB / faiss",
                "QPS KeelDB / faiss",
                "QPS ratio",
                "graph B/vector",
                "resident B/vector (all but float32 vectors)",
                "float32 vectors faulted in, B/vector",
                "raw faiss IndexHNSWFlat B/vector",
                "indexed s KeelDB / faiss build",
            ],
            rows,
        )
    )
    lines += ["", "Every swept ef:", ""]
    for run in runs:
        for size in run["sizes"]:
            for kind, r in size["kinds"].items():
                pts = ", ".join(
                    f"ef {p['ef']}: {p['keeldb_recall']:.3f}/{p['faiss_recall']:.3f} "
                    f"{p['qps_ratio']:.2f}×"
                    for p in r["points"]
                )
                lines.append(f"- {size['rows']:,} `{kind}`: {pts}")
    return "\n".join([*lines, ""])


def section_past_ram(path: Path) -> str:
    """The past-RAM figures from ``bench/past_ram.py``'s result file."""
    lines = [PAST_RAM_HEAD, ""]
    if not path.exists():
        return "\n".join(
            [*lines, "No result: run `python -m bench.past_ram --rows 1000000 --dim 384`.", ""]
        )
    r: dict[str, Any] = json.loads(path.read_text())
    free, limited = r["unlimited"], r["limited"]

    def qps(x: dict[str, Any]) -> str:
        return f"{x['qps']:,.1f}" if "qps" in x else f"failed (exit {x['returncode']})"

    lines += [
        f"From `{r.get('command', 'python -m bench.past_ram')}`: a collection of "
        f"{r.get('rows', 0):,} random unit vectors × {r.get('dim', 0)} (cosine, HNSW, "
        f"m = 12, ef_construction = 80) whose files are {r['files_bytes'] / 2**20:,.0f} MiB, "
        f"searched with {r.get('queries', 0)} single queries (k = 10) from a cold page cache, "
        f"without a limit and then in a cgroup v1 memory group limited to "
        f"{r['limit_bytes'] / 2**20:,.0f} MiB (RAM and RAM+swap; the page cache of the files "
        "it reads is charged to it).",
        "",
        _table(
            ["run", "QPS", "peak group memory MiB", "OOM-killed"],
            [
                [
                    name,
                    qps(x),
                    f"{x['max_usage_bytes'] / 2**20:,.0f}",
                    "yes" if x["oom_killed"] else "no",
                ]
                for name, x in (("unlimited", free), ("limited", limited))
            ],
        ),
        "",
        f"Same ids in both runs: **{r.get('same_ids', 'not compared')}**.",
        "",
    ]
    return "\n".join(lines)


def splice(doc: Path = DOC, results: Path = RESULTS) -> None:
    """Replace (or add, before "## Failures and gaps") the two sections in ``doc``. A
    section whose result files are absent here (results are not committed) keeps its text
    from ``doc``."""
    text = doc.read_text()
    paths = sorted(results.glob("quantization*.json"))
    past_ram = results / "past_ram.json"
    for head, body, have in (
        (QUANT_HEAD, section_quantization(paths), bool(paths)),
        (PAST_RAM_HEAD, section_past_ram(past_ram), past_ram.exists()),
    ):
        start = text.find(head)
        if start >= 0 and not have:
            continue
        if start >= 0:
            end = text.find("\n## ", start + len(head))
            text = text[:start] + body + ("\n" + text[end + 1 :] if end >= 0 else "")
        else:
            anchor = text.find("## Failures and gaps")
            anchor = anchor if anchor >= 0 else len(text)
            text = text[:anchor] + body + "\n" + text[anchor:]
    doc.write_text(text)


if __name__ == "__main__":
    splice(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)
    print(f"updated {DOC if len(sys.argv) < 2 else sys.argv[1]}")
