"""MetadataColumns: building, appending, memory, and the payload (round trip and damage)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from keeldb.filtering import FORMAT_VERSION, MetadataColumns, compile_filter
from keeldb.filtering.values import Kind

ROWS: list[dict[str, Any] | None] = [
    {"lang": "en", "year": 2024, "score": 0.5, "tags": ["a", 1, 2.5, True], "ok": True},
    None,
    {"lang": "中文", "year": 2023.5, "author": {"name": "ada", "born": None}},
    {"lang": None, "year": "2020", "tags": []},
    {"blob": b"x", "big": 2**70},
]
FILTERS: list[dict[str, Any]] = [
    {"lang": "en"},
    {"lang": {"$gte": "f"}},
    {"year": {"$gt": 2023}},
    {"tags": {"$contains": 2.5}},
    {"author.name": {"$in": ["ada", "bob"]}},
    {"author.born": None},
    {"blob": {"$exists": True}},
    {"big": {"$gt": 1e20}},
    {"ok": {"$ne": True}},
]


def masks(columns: MetadataColumns) -> list[list[bool]]:
    return [compile_filter(spec).mask(columns).tolist() for spec in FILTERS]


def test_build_and_len() -> None:
    columns = MetadataColumns.build(ROWS)
    assert len(columns) == len(ROWS)
    assert "author.name" in columns.paths() and "author" in columns.paths()
    assert columns.nbytes > 0
    assert repr(columns).startswith("MetadataColumns(rows=5")


def test_append_equals_build() -> None:
    grown = MetadataColumns()
    grown.append(ROWS[:2])
    grown.append([])
    grown.append(ROWS[2:])
    assert len(grown) == len(ROWS)
    assert masks(grown) == masks(MetadataColumns.build(ROWS))
    assert grown.to_bytes() == MetadataColumns.build(ROWS).to_bytes()


def test_append_grows_by_doubling() -> None:
    # One-row appends must not copy the whole column each time: count reallocations.
    columns = MetadataColumns()
    seen: set[int] = set()
    for i in range(2000):
        columns.append([{"x": i}])
        part = columns.column("x").parts[Kind.INT]  # type: ignore[union-attr]
        seen.add(part.rows.__array_interface__["data"][0])
    assert len(seen) <= 12
    assert compile_filter({"x": {"$gte": 1990}}).mask(columns).sum() == 10


def test_append_after_from_bytes_copies_instead_of_writing_into_the_buffer() -> None:
    payload = bytearray(MetadataColumns.build(ROWS).to_bytes())
    original = bytes(payload)
    loaded = MetadataColumns.from_bytes(payload)
    loaded.append([{"lang": "en", "year": 1, "tags": ["a"]}])
    assert bytes(payload) == original
    assert compile_filter({"lang": "en"}).mask(loaded).tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]


def test_payload_round_trip_is_stable() -> None:
    columns = MetadataColumns.build(ROWS)
    payload = columns.to_bytes()
    assert payload[:8] == b"KEELFLT\x00"
    assert struct.unpack_from("<IIQ", payload, 8) == (FORMAT_VERSION, len(columns.paths()), 5)
    loaded = MetadataColumns.from_bytes(payload)
    assert len(loaded) == len(ROWS)
    assert masks(loaded) == masks(columns)
    assert loaded.to_bytes() == payload
    assert MetadataColumns.from_bytes(memoryview(payload)).to_bytes() == payload


def test_from_bytes_is_zero_copy() -> None:
    rows = [{"n": i, "s": f"v{i % 7}", "x": [1.5] if i % 3 else "y"} for i in range(10_000)]
    aligned = np.frombuffer(MetadataColumns.build(rows).to_bytes(), dtype=np.uint8).copy()
    loaded = MetadataColumns.from_bytes(aligned.data)
    for path in loaded.paths():
        for part in loaded.column(path).parts.values():  # type: ignore[union-attr]
            assert np.shares_memory(part.rows, aligned) and part.rows.flags.aligned
            if part.kind not in (Kind.ARRAY, Kind.NULL, Kind.OBJECT):
                assert np.shares_memory(part.values, aligned) and part.values.flags.aligned
    assert compile_filter({"s": "v3"}).mask(loaded).sum() == len(range(3, 10_000, 7))


def test_empty_columns_round_trip() -> None:
    for columns in (MetadataColumns(), MetadataColumns.build([None, {}, None])):
        loaded = MetadataColumns.from_bytes(columns.to_bytes())
        assert len(loaded) == len(columns)
        assert compile_filter({"a": None}).mask(loaded).tolist() == [True] * len(columns)


@pytest.mark.slow  # a timing check: machines are noisy, so it runs with the benchmarks only
def test_build_100k_rows_is_fast() -> None:
    import time

    rows = [
        {"lang": f"l{i % 30}", "year": 1900 + i % 120, "score": i / 7, "ok": i % 2 == 0}
        for i in range(100_000)
    ]
    start = time.perf_counter()
    columns = MetadataColumns.build(rows)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed  # typically ~0.1 s on the 2-core reference machine
    assert compile_filter({"year": 1919}).mask(columns).sum() == 100_000 // 120 + 1


# -- damaged payloads: each must raise ValueError with a reason --------------------------


def _payload() -> bytes:
    return MetadataColumns.build(ROWS).to_bytes()


def test_bad_magic() -> None:
    with pytest.raises(ValueError, match="bad magic"):
        MetadataColumns.from_bytes(b"XEELFLT\x00" + _payload()[8:])


def test_unsupported_version() -> None:
    payload = bytearray(_payload())
    struct.pack_into("<I", payload, 8, 99)
    with pytest.raises(ValueError, match="unsupported format version 99"):
        MetadataColumns.from_bytes(bytes(payload))


@pytest.mark.parametrize("cut", [0, 7, 23, 24, 40, -9, -1])
def test_truncated_payload(cut: int) -> None:
    payload = _payload()
    with pytest.raises(ValueError, match="filter column payload"):
        MetadataColumns.from_bytes(payload[:cut])


def test_trailing_bytes() -> None:
    with pytest.raises(ValueError, match="trailing bytes"):
        MetadataColumns.from_bytes(_payload() + b"\x00" * 8)


def test_huge_column_count_with_tiny_body() -> None:
    payload = bytearray(_payload()[:24])
    struct.pack_into("<I", payload, 12, 2**32 - 1)
    with pytest.raises(ValueError, match="needs"):
        MetadataColumns.from_bytes(bytes(payload))


def test_huge_string_count_is_refused_before_allocating() -> None:
    body = struct.pack("<IIQ", 1, 0, 2**62) + b"a" + b"\x00" * 7
    with pytest.raises(ValueError, match="string count"):
        MetadataColumns.from_bytes(struct.pack("<8sIIQ", b"KEELFLT\x00", 1, 1, 10) + body)


def _single_part_payload(kind: int, rows: list[int], values: bytes, row_count: int) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\x00" * (-len(b) % 8)

    column = struct.pack("<IIQ", 1, 1, 0) + pad(b"f") + struct.pack("<Q", 0)
    part = struct.pack("<B3xIQ", kind, 0, len(rows)) + pad(struct.pack(f"<{len(rows)}I", *rows))
    header = struct.pack("<8sIIQ", b"KEELFLT\x00", 1, 1, row_count)
    return header + column + part + pad(values)


def test_hand_written_payload_matches_the_documented_layout() -> None:
    payload = _single_part_payload(int(Kind.INT), [0, 2], struct.pack("<2q", 7, -1), 3)
    loaded = MetadataColumns.from_bytes(payload)
    assert compile_filter({"f": 7}).mask(loaded).tolist() == [True, False, False]
    assert compile_filter({"f": {"$lt": 0}}).mask(loaded).tolist() == [False, False, True]
    assert loaded.to_bytes() == payload


def test_row_number_beyond_row_count() -> None:
    payload = _single_part_payload(int(Kind.INT), [0, 3], struct.pack("<2q", 7, -1), 3)
    with pytest.raises(ValueError, match="row number 3 >= row count 3"):
        MetadataColumns.from_bytes(payload)


def test_rows_out_of_order() -> None:
    payload = _single_part_payload(int(Kind.INT), [2, 0], struct.pack("<2q", 7, -1), 3)
    with pytest.raises(ValueError, match="not in order"):
        MetadataColumns.from_bytes(payload)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 42"):
        MetadataColumns.from_bytes(_single_part_payload(42, [0], b"", 1))


def test_bool_value_other_than_0_or_1() -> None:
    payload = _single_part_payload(int(Kind.BOOL), [0], b"\x02", 1)
    with pytest.raises(ValueError, match="bool values"):
        MetadataColumns.from_bytes(payload)


def test_string_code_outside_dictionary() -> None:
    payload = _single_part_payload(int(Kind.STR), [0], struct.pack("<i", 0), 1)
    with pytest.raises(ValueError, match="string code"):
        MetadataColumns.from_bytes(payload)


def test_elements_outside_any_array() -> None:
    payload = _single_part_payload(int(Kind.ELEM_INT), [0, 0], struct.pack("<2q", 1, 2), 1)
    with pytest.raises(ValueError, match="outside any array"):
        MetadataColumns.from_bytes(payload)


def test_row_count_over_limit() -> None:
    with pytest.raises(ValueError, match="row count"):
        MetadataColumns.from_bytes(struct.pack("<8sIIQ", b"KEELFLT\x00", 1, 0, 2**40))


def test_non_contiguous_buffer() -> None:
    view = memoryview(_payload() * 2)[::2]
    with pytest.raises(ValueError):
        MetadataColumns.from_bytes(view)


def test_mask_after_load_agrees_with_reference_on_a_big_segment() -> None:
    rng = np.random.default_rng(1)
    rows: list[dict[str, Any] | None] = [
        {"i": int(a), "f": float(b), "s": f"k{int(a) % 13}"}
        for a, b in zip(rng.integers(0, 1000, 5000), rng.random(5000), strict=True)
    ]
    loaded = MetadataColumns.from_bytes(MetadataColumns.build(rows).to_bytes())
    for spec in ({"i": {"$gte": 500}}, {"f": {"$lt": 0.3}}, {"s": {"$in": ["k1", "k2"]}}):
        f = compile_filter(spec)
        assert f.mask(loaded).tolist() == [f.matches(r) for r in rows]


def test_duplicate_dictionary_entries_still_answer_correctly() -> None:
    # Only a damaged (or foreign) payload can hold a string twice; lookups must then find
    # every code of it rather than give a wrong answer.
    def pad(b: bytes) -> bytes:
        return b + b"\x00" * (-len(b) % 8)

    column = struct.pack("<IIQ", 1, 1, 3) + pad(b"f") + struct.pack("<4Q", 0, 1, 2, 3)
    column += pad(b"xyx")
    part = struct.pack("<B3xIQ", int(Kind.STR), 0, 3) + pad(struct.pack("<3I", 0, 1, 2))
    part += pad(struct.pack("<3i", 0, 1, 2))
    header = struct.pack("<8sIIQ", b"KEELFLT\x00", 1, 1, 3)
    loaded = MetadataColumns.from_bytes(header + column + part)
    assert compile_filter({"f": "x"}).mask(loaded).tolist() == [True, False, True]
    assert compile_filter({"f": {"$in": ["x"]}}).mask(loaded).tolist() == [True, False, True]
    assert compile_filter({"f": {"$lt": "y"}}).mask(loaded).tolist() == [True, False, True]
    assert compile_filter({"f": {"$gte": "x"}}).mask(loaded).tolist() == [True, True, True]


def test_worked_example_in_the_docs_matches_the_encoder() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "filtering.md").read_text(encoding="utf-8")
    example = doc.split("### Worked example", 1)[1].split("```", 2)[1]
    # Each line: decimal offset, eight hex bytes, then a description.
    lines = [line.split() for line in example.splitlines() if line.strip()]
    documented = bytes.fromhex("".join("".join(words[1:9]) for words in lines))
    rows: list[dict[str, Any] | None] = [
        {"lang": "en", "n": 7},
        {"lang": "fr", "tags": [2.5]},
        None,
    ]
    assert MetadataColumns.build(rows).to_bytes() == documented
