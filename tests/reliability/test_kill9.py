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
