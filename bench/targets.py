"""The targets the suite checks, each evaluated from result JSON into PASS / FAIL / n/a.

From the benchmark issue: KeelDB ahead of every embedded peer (Chroma, LanceDB, Milvus
Lite, Qdrant local) on QPS at recall@10 >= 0.95, ingest rate, filtered recall and
cold-open time; within 0.8x raw faiss on single-query QPS at recall@10 >= 0.95. From the
engine's issues: ratios to raw faiss at the same ef, ingest rate with fsync, time to fully
indexed vs faiss build, 1M-vector cold open, filtered recall and filtered QPS.

Two targets have two rows each, because the issue's words allow two readings and the
report shows both verdicts:

* "ahead on filtered recall": recall at equal or higher speed (one KeelDB setting at least
  as accurate and faster than the peer in every case), and the earlier reading, mean
  recall with each system at its own ef (where the systems run 50-4,000x apart in speed,
  and an exact-only peer at 1.0 cannot be passed);
* KeelDB vs raw faiss: like with like (KeelDB's ids + distances, ``with_metadata=False``,
  the output faiss gives), and KeelDB's default call, which also decodes a metadata dict
  per hit.
"""

from __future__ import annotations

from typing import Any

from bench import systems

RECALL = 0.95
K = 10  # recall@10, as the runners measure it
EMBEDDED = [s.name for s in systems.SYSTEMS if s.embedded_db]


def _case(r: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    c = (r or {}).get("cases", {}).get(name)
    return c if c and c.get("status") == "ok" else None


def qps_at_recall(r: dict[str, Any] | None, key: str, recall: float = RECALL) -> float | None:
    """Highest ``key`` QPS among sweep points with recall@10 >= ``recall``."""
    sw = _case(r, "sweep")
    if not sw:
        return None
    rk = "recall" if key == "qps_single" else "recall_batch"
    ok = [p[key] for p in sw["points"] if p.get(key) and p.get(rk, 0) >= recall]
    return max(ok) if ok else None


def point_at_ef(r: dict[str, Any] | None, ef: Any) -> dict[str, Any] | None:
    sw = _case(r, "sweep")
    if not sw:
        return None
    return next((p for p in sw["points"] if p["ef"] == ef), None)


def filtered_mean(r: dict[str, Any] | None, key: str = "filtered") -> float | None:
    """Mean recall@10 over the filtered cases of ``key`` (None unless every case ran)."""
    f = _case(r, key)
    if not f:
        return None
    rec = [c["recall"] for c in f["cases"] if c.get("status") == "ok"]
    return sum(rec) / len(rec) if rec and len(rec) == len(f["cases"]) else None


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.4f}" if x <= 1 else f"{x:.3g}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def _row(target: str, measured: str, ok: bool | None) -> dict[str, str]:
    return {"target": target, "measured": measured, "verdict": _verdict(ok)}


def _ahead(
    res: dict[str, dict[str, Any]], what: str, getter: Any, higher: bool, unit: str
) -> list[dict[str, str]]:
    rows = []
    k = getter(res.get("keeldb"))
    for peer in EMBEDDED:
        p = getter(res.get(peer))
        lab = systems.BY_NAME[peer].label
        if k is None or p is None:
            why = "KeelDB" if k is None else lab
            rows.append(_row(f"{what}: KeelDB ahead of {lab}", f"no usable result for {why}", None))
            continue
        ok = k > p if higher else k < p
        if what.startswith("filtered recall"):
            ok = k >= p  # recall is capped at 1: "ahead" means not behind
        rows.append(
            _row(
                f"{what}: KeelDB ahead of {lab}",
                f"KeelDB {_num(k)}{unit} vs {_num(p)}{unit} ({k / p:.2f}×)",
                ok,
            )
        )
    return rows


def keeldb_filtered_settings(k: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """KeelDB's filtered operating points as (setting, {case id: case result}): the
    ``filtered`` case's ef, every ef of ``filtered_sweep``, and ``exact=True``."""
    out: list[tuple[str, dict[str, Any]]] = []

    def add(label: str, cases: list[dict[str, Any]]) -> None:
        ok = {c["case"]: c for c in cases if c.get("status") == "ok"}
        if ok:
            out.append((label, ok))

    f = _case(k, "filtered")
    if f:
        add(f"ef={f['ef']}", f["cases"])
    for p in (_case(k, "filtered_sweep") or {}).get("points", []):
        add(f"ef={p['ef']}", p["cases"])
    e = _case(k, "filtered_exact")
    if e:
        add("exact=True", e["cases"])
    return out


def _recall_on(kc: dict[str, Any], n: int) -> float:
    """KeelDB's recall of a case over its first ``n`` queries (the prefix a slower system
    was timed on), from its per-query hits; its overall recall if those are absent."""
    hits = kc.get("hits_per_query")
    if hits and len(hits) >= n:
        return float(sum(hits[:n])) / (K * n)
    return float(kc["recall"])


def _filtered_rows(res: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Filtered recall at equal or higher speed: against each peer's filtered results,
    KeelDB is ahead when one of its settings (an ef of the filtered case or its sweep, or
    exact=True) has, in every case, recall@10 not lower (on the same query prefix as the
    peer's) *and* QPS higher. The first such setting (lowest ef; exact=True last) is
    shown. This is the filtered analogue of "QPS at recall@10 >= 0.95": recall is bought
    with time, so it is compared at (at least) the peer's speed. The mean recall at each
    system's own ef (the earlier reading) is kept beside it."""
    rows = []
    settings = keeldb_filtered_settings(res.get("keeldb"))
    for peer in EMBEDDED:
        lab = systems.BY_NAME[peer].label
        what = (
            f"filtered recall@10 at ≥ the peer's speed: KeelDB ahead of {lab} (one KeelDB "
            "setting with recall ≥ and QPS > the peer's in every case)"
        )
        pf = _case(res.get(peer), "filtered")
        pcases = [c for c in (pf or {}).get("cases", []) if c.get("status") == "ok"]
        if not settings or not pcases or len(pcases) != len(pf["cases"]):  # type: ignore[index]
            why = "KeelDB" if not settings else lab
            rows.append(_row(what, f"no usable result for {why}", None))
            continue
        chosen = None
        for label, kcases in settings:
            if all(
                (kc := kcases.get(c["case"])) is not None
                and _recall_on(kc, c["n_queries"]) >= c["recall"]
                and kc["qps"] > c["qps"]
                for c in pcases
            ):
                chosen = (label, kcases)
                break
        if chosen is None:
            best = ", ".join(f"{c['case']} {c['recall']:.4f} @ {_num(c['qps'])}" for c in pcases)
            rows.append(_row(what, f"no single KeelDB setting beats {lab}'s {best}", False))
            continue
        label, kcases = chosen
        parts = [
            f"{c['case']} {_recall_on(kcases[c['case']], c['n_queries']):.4f} @ "
            f"{_num(kcases[c['case']]['qps'])} QPS vs {c['recall']:.4f} @ {_num(c['qps'])} "
            f"({c['n_queries']} queries)"
            for c in pcases
        ]
        rows.append(_row(what, f"KeelDB {label}: " + "; ".join(parts), True))
    rows += [
        {**r, "target": r["target"] + " (earlier reading: each system at its own ef, not speed)"}
        for r in _ahead(res, "filtered recall@10, mean of cases", filtered_mean, True, "")
    ]
    return rows


def _faiss_targets(k: dict[str, Any] | None, f: dict[str, Any] | None) -> list[dict[str, str]]:
    """KeelDB vs raw faiss. The verdict uses the paired case (same process, interleaved
    passes: same load); the separate faiss runner's numbers are shown beside it."""
    rows = []
    pair = _case(k, "paired_faiss")
    ksw = _case(k, "sweep")
    ef = ksw["ef_at_target"] if ksw else None
    kp, fp = point_at_ef(k, ef), point_at_ef(f, ef)
    for key, need, what in (("single", 0.8, "single-query"), ("batch", 0.9, "batch")):
        target = (
            f"{what} QPS ≥ {need}× raw faiss HNSW `IndexHNSWFlat` (same m, "
            "ef_construction, ef = KeelDB's first swept ef with recall@10 ≥ 0.95)"
        )
        sep = ""
        if kp and fp and kp.get(f"qps_{key}") and fp.get(f"qps_{key}"):
            sep = (
                f"; separate runs: {kp[f'qps_{key}']:,.0f} vs {fp[f'qps_{key}']:,.0f} = "
                f"{kp[f'qps_{key}'] / fp[f'qps_{key}']:.2f}×"
            )
        if pair:
            # Like with like: KeelDB returning ids and distances (with_metadata=False), as
            # faiss does. The default call, which also decodes a metadata dict per hit,
            # gets its own row and verdict. (Paired results without *_bare keys predate
            # with_metadata: only the default call was timed.)
            variants = [("", "default call, a metadata dict per hit as well")]
            if f"{key}_qps_ratio_bare" in pair:
                variants.insert(
                    0, ("_bare", "ids + distances (`with_metadata=False`, what faiss returns)")
                )
            for suffix, how in variants:
                r = pair[f"{key}_qps_ratio{suffix}"]
                rec = pair["recall"][f"k_{key}{suffix}"]
                # KeelDB's cosine graphs keep float16 vectors: its ratio to raw faiss with
                # the same kind of graph is shown beside the target's (no verdict).
                vs16 = pair.get(f"{key}_qps_ratio{suffix}_vs16")
                same_kind = (
                    f"; against raw faiss `IndexHNSWSQ` float16, KeelDB's kind of graph: "
                    f"{vs16:.2f}×"
                    if vs16 is not None
                    else ""
                )
                rows.append(
                    _row(
                        target + (f", {how}" if len(variants) > 1 else ""),
                        f"ef={pair['ef']}, paired: {pair[f'keeldb_qps_{key}{suffix}']:,.0f} vs "
                        f"{pair[f'faiss_qps_{key}']:,.0f} QPS, median per-round ratio "
                        f"{r:.2f}× (KeelDB recall {rec:.4f}){same_kind}"
                        f"{sep if not suffix else ''}",
                        r >= need and rec >= RECALL,
                    )
                )
        else:
            rows.append(_row(target, f"no paired result{sep}", None))
    k1, f1 = qps_at_recall(k, "qps_single"), qps_at_recall(f, "qps_single")
    rows.append(
        _row(
            "single-query QPS at recall@10 ≥ 0.95 ≥ 0.8× raw faiss (each at its own best "
            "swept point reaching 0.95; separate runs)",
            f"{k1:,.0f} vs {f1:,.0f} QPS = {k1 / f1:.2f}×" if k1 and f1 else "missing",
            (k1 / f1 >= 0.8) if k1 and f1 else None,
        )
    )
    ki = _case(k, "ingest")
    if ki:
        rows.append(
            _row(
                "ingest, durability fsync, with metadata, batches of 1,000: ≥ 50,000 "
                "vectors/s acknowledged",
                f"{ki['ack_rate_vps']:,.0f} vectors/s ({ki['n']:,} rows)",
                ki["ack_rate_vps"] >= 50_000,
            )
        )
    else:
        rows.append(_row("ingest ≥ 50,000 vectors/s acknowledged", "missing", None))
    target = (
        "time until every row is served by HNSW (ingest + compact()) ≤ 1.5× raw faiss "
        "build of the same vectors"
    )
    fb = (_case(f, "build") or {}).get("build_s")
    sep = f"; faiss runner's build: {fb:.1f} s" if fb else ""
    if ki and pair:
        r = ki["indexed_s"] / pair["faiss_build_s"]
        rows.append(
            _row(
                target,
                f"{ki['indexed_s']:.1f} s vs {pair['faiss_build_s']:.1f} s (faiss "
                f"`IndexHNSWFlat` built in the KeelDB process right after) = {r:.2f}×"
                + (
                    f"; raw faiss `IndexHNSWSQ` float16 (KeelDB's kind of graph) built in "
                    f"{pair['faiss16_build_s']:.1f} s: "
                    f"{ki['indexed_s'] / pair['faiss16_build_s']:.2f}×"
                    if "faiss16_build_s" in pair
                    else ""
                )
                + sep,
                r <= 1.5,
            )
        )
    else:
        rows.append(_row(target, f"missing paired faiss build{sep}", None))
    return rows


def evaluate_targets(res: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Every target with its measured value and verdict, in the report's order."""
    rows: list[dict[str, str]] = []
    rows += _ahead(
        res,
        "QPS at recall@10 ≥ 0.95 (single query)",
        lambda r: qps_at_recall(r, "qps_single"),
        True,
        " QPS",
    )
    rows += _ahead(
        res,
        "ingest rate (acknowledged)",
        lambda r: (_case(r, "ingest") or {}).get("ack_rate_vps"),
        True,
        " vec/s",
    )
    rows += _filtered_rows(res)
    rows += _ahead(
        res,
        "cold open (open + first query)",
        lambda r: (_case(r, "cold_open") or {}).get("open_first_query_s"),
        False,
        " s",
    )
    k, f = res.get("keeldb"), res.get("faiss-hnsw")
    rows += _faiss_targets(k, f)
    big_r = res.get("keeldb-1m")
    big = (big_r or {}).get("cases", {}).get("big_open")
    if big and big.get("status") == "ok":
        rows.append(
            _row(
                f"open of a closed {big['rows']:,}-vector collection + first search, "
                "fresh process, ≤ 1 s",
                f"{big['open_first_query_s']:.3f} s",
                big["open_first_query_s"] <= 1.0,
            )
        )
    else:
        if big:
            why = f"failed: {big.get('error')}"
        elif big_r:
            why = f"{big_r.get('status')}: {big_r.get('error')}"
        else:
            why = "not run in this mode (full mode only)"
        rows.append(_row("1M-vector open + first search ≤ 1 s", why, None))
    kf = _case(k, "filtered")
    cases = kf["cases"] if kf else []
    okc = [c for c in cases if c.get("status") == "ok"]
    rarest = min(okc, key=lambda c: c["selectivity"])["case"] if okc else None
    for c in cases:
        if c.get("status") != "ok":
            rows.append(_row(f"filtered {c['case']}", f"{c['status']}: {c.get('error')}", False))
            continue
        need = 0.99 if c["case"] == rarest else 0.95
        rows.append(
            _row(
                f"filtered recall@10, {c['case']} ({c['selectivity']:.2%} of rows"
                f"{', rarest' if c['case'] == rarest else ''}) ≥ {need}",
                f"{c['recall']:.4f}",
                c["recall"] >= need,
            )
        )
        rows.append(
            _row(
                f"filtered QPS, {c['case']} ≥ 0.5× unfiltered QPS at the same ef",
                f"ef={c['ef']}: {c['qps']:,.0f} vs {c['unfiltered_qps_same_ef']:,.0f} "
                f"= {c['qps_vs_unfiltered']:.2f}×",
                c["qps_vs_unfiltered"] >= 0.5,
            )
        )
    if not cases:
        rows.append(_row("filtered recall and QPS targets", "missing KeelDB filtered case", None))
    return rows


def print_targets(res: dict[str, dict[str, Any]]) -> None:
    for t in evaluate_targets(res):
        print(f"{t['verdict'].strip('*'):5}  {t['target']}: {t['measured']}")
