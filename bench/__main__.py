"""``python -m bench``: set up the peers, run the cases, write the report.

python -m bench all                  # make bench: setup + full run + docs/benchmarks.md
python -m bench quick                # quick mode, every system that is set up
python -m bench setup [--systems a,b]
python -m bench run --mode full --systems keeldb,faiss-hnsw
python -m bench report --mode full   # regenerate docs/benchmarks.md + docs/img/*.png
python -m bench predicates [...]     # generated predicate family (bench/predicates.py)
python -m bench load [...]           # every plan under load (bench/under_load.py)
python -m bench overhead [...]       # per-query cost outside faiss (bench/overhead.py)
python -m bench text [--skip-pypi]   # engine text search: ingest, text/hybrid QPS, nDCG
python -m bench text-peers           # SciFact BM25/hybrid vs LanceDB, Milvus Lite, Chroma
python -m bench text-lengths [...]   # text/hybrid across generated document lengths
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import driver, report, systems
from bench.targets import print_targets


def _names(arg: str | None) -> list[str] | None:
    if not arg:
        return None
    names = [n for n in arg.split(",") if n]
    unknown = [n for n in names if n not in systems.BY_NAME]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; known: {sorted(systems.BY_NAME)}")
    return names


def setup(names: list[str] | None) -> None:
    log = driver.RESULTS / "setup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for s in [systems.BY_NAME[n] for n in names] if names else systems.SYSTEMS:
        if s.venv is None:
            continue
        print(f"== setting up {s.name}: {' '.join(s.pins)}", flush=True)
        try:
            systems.set_up(s, log)
        except Exception as exc:  # reported by the run as "not set up", with this log
            print(f"   failed: {exc} (see {log})", flush=True)


# Benchmarks with their own command lines: ``python -m bench NAME --help``.
STANDALONE = {
    "predicates": "bench.predicates",
    "load": "bench.under_load",
    "overhead": "bench.overhead",
    "text-lengths": "bench.text_lengths",
}


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] in STANDALONE:
        import importlib

        module = importlib.import_module(STANDALONE[args_in[0]])
        return int(module.main(args_in[1:]))
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("setup", help="create the peers' pinned virtual environments")
    sp.add_argument("--systems")
    rp = sub.add_parser("run", help="run systems in one mode")
    rp.add_argument("--mode", choices=sorted(driver.MODES), default="quick")
    rp.add_argument("--systems")
    rp.add_argument("--results", type=Path)
    gp = sub.add_parser("report", help="write the markdown report and plots from results")
    gp.add_argument("--mode", choices=sorted(driver.MODES), default="full")
    gp.add_argument("--results", type=Path)
    gp.add_argument("--out", type=Path)
    gp.add_argument("--img", type=Path)
    qp = sub.add_parser("quick", help="quick mode for every system set up, then a report")
    qp.add_argument("--systems")
    qp.add_argument("--results", type=Path)
    ap = sub.add_parser("all", help="setup + full run + docs/benchmarks.md (make bench)")
    ap.add_argument("--systems")
    # Their options are the scripts' own (passed through; see each script's --help).
    sub.add_parser("text", help="bench/text_engine.py (engine text search)", add_help=False)
    sub.add_parser("text-peers", help="bench/text_peers.py (text vs peers)", add_help=False)
    args, rest = p.parse_known_args(argv)
    if rest and args.cmd not in ("text", "text-peers"):
        p.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.cmd in ("text", "text-peers"):
        script = "text_engine.py" if args.cmd == "text" else "text_peers.py"
        here = Path(__file__).parent
        return subprocess.run([sys.executable, str(here / script), *rest]).returncode
    if args.cmd == "setup":
        setup(_names(args.systems))
    elif args.cmd == "run":
        driver.run(args.mode, _names(args.systems), args.results)
    elif args.cmd == "report":
        path = report.write(args.mode, args.results, args.out, args.img)
        print(f"wrote {path}")
        print_targets(report.load_results(args.results or driver.RESULTS / args.mode)[0])
    elif args.cmd == "quick":
        out = driver.run("quick", _names(args.systems), args.results)
        path = report.write("quick", out, out / "benchmarks.md", out / "img")
        print(f"wrote {path}")
        print_targets(report.load_results(out)[0])
    elif args.cmd == "all":
        names = _names(args.systems)
        setup(names)
        driver.run("full", names)
        # The HTTP server bench (docs/server.md), in its own process, after the others.
        subprocess.run([sys.executable, str(Path(__file__).parent / "server_bench.py")])
        # Issue 16's benchmarks, each in its own process (docs/benchmarks.md, section 9)
        for name in STANDALONE:
            subprocess.run([sys.executable, "-m", "bench", name])
        # Quantised graphs and past RAM (docs/benchmarks.md sections 7 and 8).
        subprocess.run([sys.executable, "-m", "bench.quantization"])
        subprocess.run(
            [sys.executable, "-m", "bench.past_ram", "--rows", "1000000", "--dim", "384"]
        )
        path = report.write("full")
        print(f"wrote {path}")
        print_targets(report.load_results(driver.RESULTS / "full")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
