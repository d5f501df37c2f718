"""A widely passing filter checked against the query's own neighbourhood (issue 16).

The planner widens a filtered graph walk by the filter's *global* pass rate
(:func:`keeldb.engine.planner.filter_ef`). A filter correlated with the vectors can pass
most rows yet none near the query. On the clustered predicate family, ``cluster > 37``
passes 64 % of the rows but none of the 128 nearest of 77 of the 200 queries, and their
recall was 0.37. A wider walk does not help: it stays in the excluded cluster.

So, for a single query whose filter passes at least :data:`PROBE_MIN_PASS` of a graph
unit's rows, and whose ``k`` is at most half the walk's width (else the first case below
cannot happen and the probe would mostly add a walk), the graph is first walked without
the filter (same ``ef``), and its candidates show the pass rate near the query:

* the k-th passing candidate lies in the nearer half of them: the walk covered the
  nearest passing rows, and they are the answer (plan ``hnsw-probe``; one unfiltered
  walk in place of the filtered one, measured at about the same time);
* none passes: the neighbourhood is filtered out, and the exact plan answers
  (``probe+exact-filtered``), when the unit's passing rows are at most
  :data:`EXACT_FALLBACK_MAX_ROWS` (beyond that the filtered walk runs, as before);
* otherwise the filtered walk runs, as before.
"""

from __future__ import annotations

import numpy as np

from keeldb.index.base import Allowed
from keeldb.index.exact import ExactIndex
from keeldb.index.hnsw import HnswIndex

__all__ = ["EXACT_FALLBACK_MAX_ROWS", "PROBE_MIN_PASS", "probe"]

# The filter's global pass rate from which a single query probes its neighbourhood first:
# below it, an unfiltered walk of the same width holds too few passing rows to answer, and
# the probe would only add a walk.
PROBE_MIN_PASS = 0.5
# The most passing rows an exact scan reads when the neighbourhood is filtered out
# (262,144 x 384 float32: 384 MiB read, tens of milliseconds on one thread).
EXACT_FALLBACK_MAX_ROWS = 1 << 18


def probe(
    hnsw: HnswIndex,
    exact: ExactIndex,
    queries: np.ndarray,
    k: int,
    ef: int,
    allowed: Allowed,
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The answer for one query (``queries`` (1, d)) among ``allowed`` rows from an
    unfiltered walk of width ``ef``, or the exact plan's when none of the walk's
    candidates passes: (distances (1, k'), rows (1, k'), plan). None: walk filtered."""
    dist, rows = hnsw.search(queries, ef, ef, None)
    found = rows[0] >= 0
    cand_rows, cand_dist = rows[0][found], dist[0][found]
    passing = np.flatnonzero(allowed.mask[cand_rows])
    want = min(k, allowed.count)
    if want and len(passing) >= want and passing[want - 1] < (len(cand_rows) + 1) // 2:
        take = passing[: hnsw.candidates(k, ef)]
        chosen = cand_rows[take][None, :]
        if hnsw.exact_scores:
            return cand_dist[take][None, :k], chosen[:, :k], "hnsw-probe"
        d, r = exact.rescore(queries, chosen)  # float32 distances, re-sorted
        return d[:, :k], r[:, :k], "hnsw-probe"
    if not len(passing) and allowed.count <= EXACT_FALLBACK_MAX_ROWS:
        d, r = exact.search(queries, k, ef, allowed)
        return d, r, "probe+exact-filtered"
    return None
