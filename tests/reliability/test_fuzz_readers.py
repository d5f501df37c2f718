"""Hostile input for the on-disk readers (Hypothesis).

Every reader of a KeelDB file, given arbitrary bytes -- and, past the checksums, arbitrary
payloads under a *valid* checksum (a forged or buggy file) -- must either decode it or
raise CorruptionError (ValueError for the WAL batch decoder, which recovery wraps): never
another exception, a crash or a hang. (The HNSW file is parsed by faiss only after its
graph region passed its CRC, so faiss itself is not fuzzed here.)
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import (
    HEADER_SIZE,
    MAGIC_IDS,
    MAGIC_MANIFEST,
    MAGIC_METADATA,
    MAGIC_TOMBSTONES,
    MAGIC_WAL,
)
from keeldb.storage.framed import FrameHeader, crc32c, pack_header, read_framed
from keeldb.storage.manifest import read_manifest
from keeldb.storage.records import DeleteOp, UpsertOp, decode_batch, encode_batch
from keeldb.storage.segment_files import IdTable, MetadataTable, read_tombstones
from keeldb.storage.wal import WalWriter, read_wal

FS = OsFileSystem()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _framed(magic: bytes, payload: bytes, rows: int, aux: int = 0) -> bytes:
    header = pack_header(FrameHeader(magic, 1, 0, rows, aux, len(payload), crc32c(payload)))
    return header + payload


_ROOT = tempfile.mkdtemp(
    prefix="keeldb-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
)
atexit.register(shutil.rmtree, _ROOT, True)


def _tmpdir() -> str:
    return tempfile.mkdtemp(dir=_ROOT)


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    Path(path).write_bytes(data)
    return path


@SETTINGS
@given(st.binary(max_size=400))
def test_framed_reader_on_arbitrary_bytes(data: bytes) -> None:
    d = _tmpdir()
    try:
        read_framed(FS, _write(d, "f", data), MAGIC_METADATA)
    except CorruptionError:
        pass


@st.composite
def _batch(draw: st.DrawFn) -> list[UpsertOp | DeleteOp]:
    ops: list[UpsertOp | DeleteOp] = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 4))
        ids = [
            f"id{i}"
            for i in draw(st.lists(st.integers(0, 50), min_size=n, max_size=n, unique=True))
        ]
        if draw(st.booleans()):
            vectors = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
            ops.append(UpsertOp(ids, vectors, [{"i": i} if i % 2 else None for i in range(n)]))
        else:
            ops.append(DeleteOp(ids))
    return ops


@SETTINGS
@given(_batch(), st.data())
def test_wal_reader_on_damaged_logs(
    batches: list[UpsertOp | DeleteOp], data: st.DataObject
) -> None:
    d = _tmpdir()
    w = WalWriter(FS, d, 1)
    for seq in range(1, 4):
        w.append(seq, encode_batch(batches))
    w.close(sync=False)
    path = os.path.join(d, "wal-0000000000000001.log")
    raw = bytearray(Path(path).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        how = data.draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if how == "flip" and raw:
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "cut":
            del raw[pos:]
        elif how == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=30))
        elif raw:
            raw[pos : pos + 16] = bytes(len(raw[pos : pos + 16]))
    Path(path).write_bytes(bytes(raw))
    for is_last in (True, False):
        for salvage in (True, False):
            try:
                scan = read_wal(FS, path, 1, is_last=is_last, salvage=salvage)
            except CorruptionError:
                continue
            for i, record in enumerate(scan.records):
                assert record.seq == 1 + i
                decode_batch(record.payload)  # CRC-verified records decode


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 2**64 - 1))
def test_batch_decoder_on_arbitrary_payloads(payload: bytes, _seq: int) -> None:
    try:
        decode_batch(payload)
    except ValueError:
        pass


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=5),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_manifest_reader_on_valid_frames_with_bad_json(payload: bytes) -> None:
    d = _tmpdir()
    _write(d, "MANIFEST", _framed(MAGIC_MANIFEST, payload, 0))
    try:
        read_manifest(FS, d)
    except CorruptionError:
        pass


@SETTINGS
@given(st.integers(0, 6), st.binary(max_size=200), st.integers(0, 6))
def test_id_and_metadata_tables_on_valid_frames_with_bad_payloads(
    rows: int, payload: bytes, claimed: int
) -> None:
    d = _tmpdir()
    _write(d, "seg-00000001.ids", _framed(MAGIC_IDS, payload, claimed))
    _write(d, "seg-00000001.meta", _framed(MAGIC_METADATA, payload, claimed))
    try:
        t = IdTable(d, 1, rows)
        for r in range(rows):
            t.id_at(r)
    except CorruptionError:
        pass
    try:
        m = MetadataTable(d, 1, rows)
        for r in range(rows):
            m.at(r)
    except CorruptionError:
        pass


@SETTINGS
@given(st.integers(0, 40), st.binary(max_size=10), st.integers(0, 50), st.integers(0, 50))
def test_tombstone_reader_on_valid_frames_with_bad_payloads(
    rows: int, payload: bytes, claimed: int, aux: int
) -> None:
    d = _tmpdir()
    _write(d, "seg-00000001.del-00000001", _framed(MAGIC_TOMBSTONES, payload, claimed, aux))
    try:
        dead = read_tombstones(FS, d, "seg-00000001.del-00000001", rows)
        assert len(dead) == rows
    except CorruptionError:
        pass


def test_wal_magic_is_checked() -> None:
    d = _tmpdir()
    path = _write(d, "wal-0000000000000001.log", _framed(MAGIC_IDS, b"", 0, 1) + b"x" * 30)
    try:
        read_wal(FS, path, 1, is_last=True, salvage=False)
    except CorruptionError as exc:
        assert "magic" in str(exc)
    else:
        raise AssertionError("a file with the wrong magic was read as a WAL")
    assert HEADER_SIZE == 64 and MAGIC_WAL != MAGIC_IDS
