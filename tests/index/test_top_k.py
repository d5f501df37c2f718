"""``top_k``: the one-query fast path answers exactly as the row-wise path."""

from __future__ import annotations

import numpy as np
import pytest

from keeldb.index.exact import top_k


@pytest.mark.parametrize("seed", range(20))
def test_one_query_equals_the_rowwise_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    k = int(rng.integers(1, 450))
    rows = rng.integers(0, 6, size=(3, n)).astype(np.float32)  # many ties
    rows[rng.random((3, n)) < 0.1] = np.inf  # missing rows: label -1
    both_d, both_l = top_k(rows, k)  # three queries: the row-wise path
    for i in range(3):
        d, lab = top_k(rows[i : i + 1], k)
        assert d.dtype == np.float32 and lab.dtype == np.int64
        np.testing.assert_array_equal(d, both_d[i : i + 1])
        np.testing.assert_array_equal(lab, both_l[i : i + 1])
        finite = np.isfinite(rows[i])
        want = np.sort(rows[i][finite])[: min(k, n)]
        np.testing.assert_array_equal(d[0][: len(want)], want)
        assert (lab[0][len(want) :] == -1).all()
