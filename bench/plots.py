"""The report's PNG plots (matplotlib, headless): recall vs QPS and ingest rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import systems

ORDER = [s.name for s in systems.SYSTEMS]


def case(r: dict[str, Any], name: str) -> dict[str, Any] | None:
    c = r.get("cases", {}).get(name)
    return c if c and c.get("status") == "ok" else None


def label(name: str) -> str:
    return systems.BY_NAME[name].label if name in systems.BY_NAME else name


def plots(res: dict[str, dict[str, Any]], img: Path) -> dict[str, str]:
    """Write the PNG plots; return name -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    files = {}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, key, title in (
        (axes[0], "qps_single", "one query per call"),
        (axes[1], "qps_batch", "one batch call (all queries)"),
    ):
        for name in ORDER:
            sw = case(res.get(name, {}), "sweep")
            if not sw:
                continue
            pts = [p for p in sw["points"] if p.get(key)]
            if not pts:
                continue
            style = "o-" if len(pts) > 1 else "s"
            ax.plot(
                [p["recall" if key == "qps_single" else "recall_batch"] for p in pts],
                [p[key] for p in pts],
                style,
                label=label(name),
                linewidth=2 if name == "keeldb" else 1.2,
                markersize=5,
            )
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (log)")
        ax.axvline(0.95, color="grey", linestyle=":", linewidth=1)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Recall@10 vs QPS (ef sweep), pypi-minilm")
    fig.tight_layout()
    files["recall_qps"] = "bench-recall-qps.png"
    fig.savefig(img / files["recall_qps"], dpi=110)
    plt.close(fig)

    filtered = _filtered_plot(res, img, plt)
    if filtered:
        files["filtered"] = filtered

    names = [n for n in ORDER if case(res.get(n, {}), "ingest")]
    if names:
        fig, ax = plt.subplots(figsize=(10, 0.6 * len(names) + 1.5))
        ack = [res[n]["cases"]["ingest"]["ack_rate_vps"] for n in names]
        idx = [res[n]["cases"]["ingest"]["indexed_rate_vps"] for n in names]
        ys = range(len(names))
        ax.barh([y + 0.2 for y in ys], ack, height=0.4, label="acknowledged (durable) rate")
        ax.barh([y - 0.2 for y in ys], idx, height=0.4, label="fully indexed rate")
        ax.set_yticks(list(ys), [label(n) for n in names])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("vectors per second (log), batches of 1,000 with metadata")
        ax.legend(fontsize=8)
        ax.grid(True, axis="x", which="both", alpha=0.3)
        fig.tight_layout()
        files["ingest"] = "bench-ingest.png"
        fig.savefig(img / files["ingest"], dpi=110)
        plt.close(fig)
    return files


def _filtered_plot(res: dict[str, dict[str, Any]], img: Path, plt: Any) -> str | None:
    """Per filtered case: KeelDB's recall / QPS over its filtered ef sweep (and exact=True),
    every other system's single filtered result as a point."""
    from bench.targets import keeldb_filtered_settings

    settings = keeldb_filtered_settings(res.get("keeldb"))
    if not settings:
        return None
    case_ids = list(dict.fromkeys(cid for _, cases in settings for cid in cases))
    fig, axes = plt.subplots(1, len(case_ids), figsize=(5.2 * len(case_ids), 4.8), squeeze=False)
    for ax, cid in zip(axes[0], case_ids, strict=True):
        hnsw = [
            (c[cid]["recall"], c[cid]["qps"])
            for lab, c in settings
            if lab != "exact=True" and cid in c
        ]
        exact = [
            (c[cid]["recall"], c[cid]["qps"])
            for lab, c in settings
            if lab == "exact=True" and cid in c
        ]
        if hnsw:
            ax.plot(*zip(*hnsw, strict=True), "o-", linewidth=2, label="KeelDB (ef sweep)")
        if exact:
            ax.plot(*zip(*exact, strict=True), "*", markersize=12, label="KeelDB exact=True")
        for name in ORDER:
            if name == "keeldb":
                continue
            f = case(res.get(name, {}), "filtered")
            c = next((c for c in (f or {}).get("cases", []) if c.get("case") == cid), None)
            if c and c.get("status") == "ok":
                ax.plot([c["recall"]], [c["qps"]], "s", markersize=6, label=label(name))
        ax.set_yscale("log")
        ax.set_xlabel("filtered recall@10")
        ax.set_ylabel("queries per second (log)")
        ax.set_title(cid)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Filtered recall@10 vs QPS, one query per call, pypi-minilm")
    fig.tight_layout()
    name = "bench-filtered.png"
    fig.savefig(img / name, dpi=110)
    plt.close(fig)
    return name
