"""Kill -9 crash test: a writer process killed with SIGKILL at random moments
(``bench/soak.py``, a short run here; the long one is ``python bench/soak.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def _soak(tmp: Path, trials: int, seed: int, max_wait_s: float) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--trials",
            str(trials),
            "--seed",
            str(seed),
            "--dir",
            str(tmp),
            "--max-wait",
            str(max_wait_s),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode in (0, 1), out.stderr
    totals: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return totals


def test_sigkill_writer_loses_no_acknowledged_write(fast_tmp: Path) -> None:
    totals = _soak(fast_tmp, trials=6, seed=3, max_wait_s=1.0)
    print(f"\n[kill-9] {totals}")
    assert totals["failures"] == []
    assert totals["lost_or_damaged_records"] == 0
    assert totals["trials"] == 6
    assert int(totals["acknowledged_batches"]) > 20  # type: ignore[call-overload]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 200 trials of up to 2 s of writing each, plus reopen checks
def test_sigkill_soak_long(tmp_path: Path) -> None:
    totals = _soak(tmp_path, trials=200, seed=11, max_wait_s=2.0)
    print(f"\n[kill-9 soak] {totals}")
    assert totals["failures"] == []
    assert totals["trials"] == 200


def test_a_writer_whose_driver_died_stops(tmp_path: Path) -> None:
    """A soak driver killed by a test timeout left its writer running (and using a core)
    for good; the writer now exits once its parent is gone."""
    import os
    import time

    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, {str(SOAK)!r}, '--writer', "
        f"{str(tmp_path / 'db')!r}, '1', '0', {str(tmp_path / 'acks.log')!r}])\n"
        "print(p.pid, flush=True)\n"
        # the writer is up and writing (its first acknowledgement is logged); then the
        # driver just ends
        f"acks = {str(tmp_path / 'acks.log')!r}\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        if open(acks).read().strip(): break\n"
        "    except FileNotFoundError: pass\n"
        "    time.sleep(0.05)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    pid = int(out.stdout.split()[0])
    assert (tmp_path / "acks.log").read_text().strip(), "the writer never acknowledged a write"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return  # exited; a zombie until init reaps it
        except (ProcessLookupError, FileNotFoundError):
            return  # exited and reaped (maybe between the two checks)
        time.sleep(0.1)
    os.kill(pid, 9)
    raise AssertionError("the writer kept running after its driver died")
