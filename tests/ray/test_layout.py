"""The shard record: written once, checked on every open, damage reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeldb.errors import CorruptionError
from keeldb.ray.errors import ShardCountMismatchError
from keeldb.ray.layout import RECORD_NAME, check_or_write_record, shard_directory


def test_record_is_written_then_checked(tmp_path: Path) -> None:
    d = Path(shard_directory(str(tmp_path), 1))
    assert d.name == "shard-0001"
    d.mkdir()
    check_or_write_record(str(d), 1, 4)
    assert (d / RECORD_NAME).read_bytes() == (
        b'{"format":1,"shard":1,"shards":4,"routing":"fnv1a64-codepoints-fmix64"}\n'
    )
    assert check_or_write_record(str(d), 1, 4).shards == 4
    with pytest.raises(ShardCountMismatchError, match="shard 1 of a database with 4 shards"):
        check_or_write_record(str(d), 1, 5)
    with pytest.raises(ShardCountMismatchError):
        check_or_write_record(str(d), 2, 4)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"format":1,"shard":0}\n',
        b'{"format":2,"shard":0,"shards":2,"routing":"fnv1a64-codepoints-fmix64"}\n',
        b'{"format":1,"shard":0,"shards":2,"routing":"python-hash"}\n',
    ],
)
def test_damaged_record_is_corruption(tmp_path: Path, content: bytes) -> None:
    (tmp_path / RECORD_NAME).write_bytes(content)
    with pytest.raises(CorruptionError, match=RECORD_NAME):
        check_or_write_record(str(tmp_path), 0, 2)
