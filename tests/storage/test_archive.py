"""The tar form of backups (issue 17, "Also build"): pack / safe_extract round trip, and
hostile or incomplete archives built here are refused with a clear error, writing nothing."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import orjson
import pytest

import keeldb
from keeldb import CorruptionError, InvalidArgumentError
from keeldb.storage.archive import COMPLETE_MARKER, pack, safe_extract


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _marker(files: dict[str, bytes]) -> bytes:
    listed = [
        {"path": k, "size": len(v), "sha256": hashlib.sha256(v).hexdigest()}
        for k, v in files.items()
    ]
    return orjson.dumps({"format": 1, "files": listed})


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _hostile(
    path: Path,
    members: list[tuple[str, bytes, dict[str, object]]],
    listed: dict[str, bytes] | None = None,
    marker: bool = True,
) -> Path:
    """A tar with ``members`` then (unless ``marker`` is False) a BACKUP-COMPLETE marker
    listing ``listed`` (default: the regular members as given)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in members:
            _add(tar, name, data, **attrs)
        if marker:
            if listed is None:
                listed = {
                    n: d for n, d, a in members if a.get("type", tarfile.REGTYPE) == tarfile.REGTYPE
                }
            _add(tar, COMPLETE_MARKER, _marker(listed))
    return path


def _refused(
    tmp_path: Path, archive: Path, match: str, error: type[Exception] = InvalidArgumentError
) -> None:
    dest = tmp_path / "restored"
    with pytest.raises(error, match=match):
        safe_extract(archive, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if ".extract-" in p.name] == []  # no leftovers


def test_pack_and_extract_a_database_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "db"
    with keeldb.open(src) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        col.upsert([f"r{i}" for i in range(50)], np.random.default_rng(0).normal(size=(50, 4)))
    summary = pack(src, tmp_path / "b.tar")
    restored = tmp_path / "restored"
    got = safe_extract(tmp_path / "b.tar", restored)
    assert got == summary and got.files == len(_tree(src))
    assert _tree(restored) == _tree(src)
    with tarfile.open(tmp_path / "b.tar") as tar:
        assert tar.getnames()[-1] == COMPLETE_MARKER
    with keeldb.open(restored) as db:
        assert db.get_collection("c").count() == 50
    assert keeldb.check(str(restored)).ok


def test_gzipped_archive_is_read_too(tmp_path: Path) -> None:
    files = {"a/x": b"hello", "y": b"world"}
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tar:
        for name, data in files.items():
            _add(tar, name, data)
        _add(tar, COMPLETE_MARKER, _marker(files))
    safe_extract(tmp_path / "b.tar.gz", tmp_path / "out")
    assert _tree(tmp_path / "out") == files


def test_pack_refuses_links_and_an_existing_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    (src / "link").symlink_to(src / "f")
    with pytest.raises(InvalidArgumentError, match="symbolic link"):
        pack(src, tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()
    (src / "link").unlink()
    (tmp_path / "b.tar").write_bytes(b"mine")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        pack(src, tmp_path / "b.tar")
    assert (tmp_path / "b.tar").read_bytes() == b"mine"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("/etc/evil", "absolute"),
        ("../evil", r"'\.\.'"),
        ("a/../../evil", r"'\.\.'"),
        ("a/b/../../../evil", r"'\.\.'"),
    ],
)
def test_escaping_paths_are_refused(tmp_path: Path, name: str, match: str) -> None:
    archive = _hostile(tmp_path / "h.tar", [("ok", b"1", {}), (name, b"evil", {})])
    _refused(tmp_path, archive, match)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    ("attrs", "match"),
    [
        ({"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "links"),
        ({"type": tarfile.SYMTYPE, "linkname": "../../x"}, "links"),
        ({"type": tarfile.LNKTYPE, "linkname": "ok"}, "links"),
        ({"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "devices, FIFOs"),
        ({"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, "devices, FIFOs"),
        ({"type": tarfile.FIFOTYPE}, "devices, FIFOs"),
    ],
)
def test_links_devices_and_fifos_are_refused(
    tmp_path: Path, attrs: dict[str, object], match: str
) -> None:
    archive = _hostile(tmp_path / "h.tar", [("ok", b"1", {}), ("special", b"", attrs)])
    _refused(tmp_path, archive, match)


def test_oversized_members_and_archives_are_refused(tmp_path: Path) -> None:
    archive = _hostile(tmp_path / "h.tar", [("a", b"x" * 1000, {}), ("b", b"y" * 1000, {})])
    with pytest.raises(InvalidArgumentError, match="over the limit of 999"):
        safe_extract(archive, tmp_path / "out", max_member_bytes=999)
    with pytest.raises(InvalidArgumentError, match="max_total_bytes"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=1500)
    with pytest.raises(InvalidArgumentError, match="max_members"):
        safe_extract(archive, tmp_path / "out", max_members=1)
    assert not (tmp_path / "out").exists()
    assert safe_extract(archive, tmp_path / "out", max_member_bytes=1000).files == 2


def test_archive_without_the_completion_marker_is_refused(tmp_path: Path) -> None:
    archive = _hostile(tmp_path / "h.tar", [("a", b"1", {})], marker=False)
    _refused(tmp_path, archive, "incomplete")


def test_marker_that_is_not_last_is_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "h.tar", "w") as tar:
        _add(tar, COMPLETE_MARKER, _marker({"a": b"1"}))
        _add(tar, "a", b"1")
    _refused(tmp_path, tmp_path / "h.tar", "incomplete")


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(200_000))
    pack(src, tmp_path / "b.tar")
    data = (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "b.tar") as tar:
        marker = tar.getmember(COMPLETE_MARKER)
    # Mid-file, just before the marker, and inside the marker (the zero blocks after it
    # are the tar's end: without them the members are still whole).
    for cut in (len(data) // 2, marker.offset, marker.offset_data + marker.size - 1):
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        dest = tmp_path / "restored"
        with pytest.raises((InvalidArgumentError, CorruptionError)):
            safe_extract(tmp_path / "cut.tar", dest)
        assert not dest.exists()


def test_checksum_mismatch_is_corruption(tmp_path: Path) -> None:
    archive = _hostile(tmp_path / "h.tar", [("a", b"good", {})], listed={"a": b"evil"})
    _refused(tmp_path, archive, "SHA-256", CorruptionError)


def test_members_and_list_must_agree(tmp_path: Path) -> None:
    extra = _hostile(tmp_path / "e.tar", [("a", b"1", {}), ("b", b"2", {})], listed={"a": b"1"})
    _refused(tmp_path, extra, "not listed")
    missing = _hostile(tmp_path / "m.tar", [("a", b"1", {})], listed={"a": b"1", "b": b"2"})
    _refused(tmp_path, missing, "missing")


def test_duplicates_and_conflicts_are_refused(tmp_path: Path) -> None:
    dup = _hostile(tmp_path / "d.tar", [("a", b"1", {}), ("./a", b"2", {})], listed={"a": b"1"})
    _refused(tmp_path, dup, "more than once")
    conflict = _hostile(tmp_path / "c.tar", [("a", b"1", {}), ("a/b", b"2", {})])
    _refused(tmp_path, conflict, "conflicts")


def test_malformed_marker_and_non_archives_are_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "h.tar", "w") as tar:
        _add(tar, "a", b"1")
        _add(tar, COMPLETE_MARKER, b"{not json")
    _refused(tmp_path, tmp_path / "h.tar", "malformed")
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar archive" * 40)
    _refused(tmp_path, tmp_path / "junk.tar", "not a readable tar|incomplete|truncated")


def test_extract_never_overwrites(tmp_path: Path) -> None:
    archive = _hostile(tmp_path / "h.tar", [("a", b"1", {})])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine").write_text("keep")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "mine").read_text() == "keep"
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        safe_extract(archive, tmp_path / "no" / "such" / "out")
