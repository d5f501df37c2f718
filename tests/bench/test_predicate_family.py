"""The generated predicate family (bench/predicate_family.py): fixed by its seed, spread
over the selectivity bands, and its own masks agree with KeelDB's filter engine."""

from __future__ import annotations

import numpy as np
from bench.predicate_family import BANDS, PER_BAND, clustered_family, generate

from keeldb.filtering import MetadataColumns, compile_filter


def test_family_is_fixed_by_its_seed_and_covers_every_band() -> None:
    fam = clustered_family(4000, 10, dim=16)
    a = generate(fam.fields, seed=3)
    b = generate(fam.fields, seed=3)
    assert [p.spec for p in a] == [p.spec for p in b]
    assert len(a) == len(BANDS) * PER_BAND
    for i, (lo, hi) in enumerate(BANDS):
        band = a[i * PER_BAND : (i + 1) * PER_BAND]
        assert all(lo <= p.selectivity < hi for p in band)
    shapes = {p.shape for p in a}
    assert {"and", "or", "not", "and-ne"} <= shapes


def test_bench_masks_agree_with_the_filter_engine() -> None:
    fam = clustered_family(4000, 10, dim=16)
    cols = MetadataColumns.build(fam.metadata)
    for p in generate(fam.fields, seed=5):
        engine = compile_filter(p.spec).mask(cols)
        assert np.array_equal(engine, p.mask), p.spec
