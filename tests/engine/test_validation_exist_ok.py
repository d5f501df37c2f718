"""``create_collection(..., exist_ok=True)`` with different parameters names the parameter
that differs (issue 17, item 9): it said only "already exists with different parameters"."""

from __future__ import annotations

import pytest

import keeldb
from keeldb import AlreadyExistsError


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"dim": 5}, "dim=4 (asked 5)"),
        ({"metric": "l2"}, "metric='cosine' (asked 'l2')"),
        ({"m": 8}, "m=16 (asked 8)"),
        ({"ef_construction": 100}, "ef_construction=200 (asked 100)"),
        ({"ef_search": 10}, "ef_search=64 (asked 10)"),
        ({"dim": 5, "m": 8}, "dim=4 (asked 5), m=16 (asked 8)"),
    ],
)
def test_exist_ok_mismatch_names_the_parameter(
    db: keeldb.Database, changed: dict[str, object], expected: str
) -> None:
    db.create_collection("c", dim=4)
    params: dict[str, object] = {"dim": 4, **changed}
    with pytest.raises(AlreadyExistsError) as exc:
        db.create_collection("c", exist_ok=True, **params)  # type: ignore[arg-type]
    assert str(exc.value) == f"collection default/c already exists with {expected}"


def test_exist_ok_with_the_same_parameters_returns_the_collection(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4, metric="l2", m=8)
    assert db.create_collection("c", dim=4, metric="l2", m=8, exist_ok=True) is col
    with pytest.raises(AlreadyExistsError, match="^collection default/c already exists$"):
        db.create_collection("c", dim=4, metric="l2", m=8)
