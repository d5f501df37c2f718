"""On-disk format constants: magics, versions, header layout, record types, file names.

Only constants and name builders live here, as in LevelDB's ``log_format.h`` and
``filename.h``; readers and writers share nothing else. The byte-level description of
every file is ``docs/format.md``; change both together.
"""

from __future__ import annotations

import re
import struct

FORMAT_VERSION = 1
# The version in the trailer of an ``.hnsw`` file whose graph keeps float16 vectors
# (cosine, since 0.2). 0.1 refuses the version and rebuilds a float32 graph from ``.vec``
# instead of answering with float16 distances (docs/format.md).
HNSW_FP16_VERSION = 2
# The version in the trailer of an ``.hnsw`` file whose graph keeps 8-bit scalar-quantised
# vectors (``quantization="sq8"``, since 0.3); versions 1 and 2 readers refuse it.
HNSW_SQ8_VERSION = 3

# --- the 64-byte file header shared by every framed file ---------------------------------
# offset size field
#  0      8   magic
#  8      4   format version (u32)
# 12      4   flags (u32, 0)
# 16      8   rows (u64)
# 24      8   aux (u64): dim for vector files, first sequence number for WAL files, else 0
# 32      8   payload length in bytes (u64)
# 40      4   payload CRC32C (u32) (WAL files: 0, records carry their own)
# 44      4   aux2 (u32): HNSW trailer: CRC32C of the storage region; else 0
# 48      8   aux3 (u64): HNSW trailer: length of the graph region; else 0
# 56      4   reserved (0)
# 60      4   header CRC32C over bytes 0..59
HEADER = struct.Struct("<8sIIQQQIIQII")
HEADER_SIZE = 64
assert HEADER.size == HEADER_SIZE

MAGIC_VECTORS = b"KEELVEC\x00"
MAGIC_IDS = b"KEELIDS\x00"
MAGIC_METADATA = b"KEELMETA"
MAGIC_COLUMNS = b"KEELCOLS"
MAGIC_TOMBSTONES = b"KEELTOMB"
MAGIC_MANIFEST = b"KEELMANI"
MAGIC_WAL = b"KEELWAL\x00"
MAGIC_HNSW = b"KEELHNSW"
MAGIC_MARKER = b"KEELDB\x00\x00"
MAGIC_BACKUP = b"KEELBKUP"
# The payload of a ``.cols`` file (inside its framed envelope) starts with its own magic.
MAGIC_FILTER_COLUMNS = b"KEELFLT\x00"
FILTER_COLUMNS_VERSION = 1
MAGIC_DOCUMENTS = b"KEELDOCS"
MAGIC_POSTINGS = b"KEELPOST"

# --- WAL records -------------------------------------------------------------------------
# offset size field
#  0      4   CRC32C of bytes 4 .. 20+length (length, type, reserved, seq, payload)
#  4      4   payload length (u32)
#  8      1   record type
#  9      3   reserved (0)
# 12      8   sequence number (u64), +1 per record, never reused
# 20      n   payload
WAL_RECORD_HEADER = struct.Struct("<IIB3xQ")
WAL_RECORD_HEADER_SIZE = 20
assert WAL_RECORD_HEADER.size == WAL_RECORD_HEADER_SIZE
WAL_RECORD_BATCH = 1
MAX_WAL_RECORD_BYTES = 1 << 31  # 2 GiB: a larger length field is treated as damage

# Operations inside a batch record.
OP_UPSERT = 1
OP_DELETE = 2
OP_UPSERT_DOCS = 3  # an upsert that carries documents (since 0.2; op 1 still decodes)

# --- file names (the one place that builds them) -----------------------------------------
# Database root: LOCK, the KEELDB marker, and workspaces/<workspace>/<collection>/.
LOCK_NAME = "LOCK"
MARKER_NAME = "KEELDB"
BACKUP_NAME = "BACKUP"  # in a backup directory only, written last (engine/backup.py)
WORKSPACES_DIR = "workspaces"
# A collection directory: MANIFEST, wal-*.log, seg-* files.
MANIFEST_NAME = "MANIFEST"
TMP_SUFFIX = ".keeldb-tmp"
# Every extension a segment file may have: the engine's own (vectors, ids, metadata,
# filter columns, HNSW graph), then those of derived indexes (``engine/derived.py``):
# the full-text index's documents and postings.
CORE_SEGMENT_EXTENSIONS = ("vec", "ids", "meta", "cols", "hnsw")
DERIVED_SEGMENT_EXTENSIONS: tuple[str, ...] = ("docs", "post")
SEGMENT_EXTENSIONS = CORE_SEGMENT_EXTENSIONS + DERIVED_SEGMENT_EXTENSIONS
# Collection directories being created or dropped (removed on open after a crash).
_CREATING_PREFIX = ".creating-"
_TRASH_PREFIX = ".trash-"

_WAL_RE = re.compile(r"^wal-(\d{16})\.log$")
_SEGMENT_RE = re.compile(r"^seg-(\d{8})\.(" + "|".join(SEGMENT_EXTENSIONS) + r")$")
_TOMB_RE = re.compile(r"^seg-(\d{8})\.del-(\d{8})$")


def wal_name(first_seq: int) -> str:
    """Name of the WAL file whose first record has sequence number ``first_seq``."""
    return f"wal-{first_seq:016d}.log"


def parse_wal_name(name: str) -> int | None:
    """The first sequence number encoded in a WAL file name, or None if not a WAL name."""
    m = _WAL_RE.match(name)
    return int(m.group(1)) if m else None


def segment_file_name(segment_id: int, ext: str) -> str:
    """Name of one file of a sealed segment (``ext`` in :data:`SEGMENT_EXTENSIONS`)."""
    assert ext in SEGMENT_EXTENSIONS
    return f"seg-{segment_id:08d}.{ext}"


def tombstone_file_name(segment_id: int, generation: int) -> str:
    """Name of a segment's tombstone bitmap written at manifest ``generation``."""
    return f"seg-{segment_id:08d}.del-{generation:08d}"


def segment_id_of(name: str) -> int | None:
    """The segment id of a segment or tombstone file name (or of such a file being
    written, under its temporary name), or None for any other name."""
    if name.endswith(TMP_SUFFIX):
        name = name[: -len(TMP_SUFFIX)]
    m = _SEGMENT_RE.match(name) or _TOMB_RE.match(name)
    return int(m.group(1)) if m else None


def creating_dir_name(collection: str, token: str) -> str:
    """Name of the directory a collection is built in before it is renamed into place."""
    return f"{_CREATING_PREFIX}{collection}-{token}"


def trash_dir_name(collection: str, token: str) -> str:
    """Name a dropped collection's directory is renamed to before it is deleted."""
    return f"{_TRASH_PREFIX}{collection}-{token}"


def is_leftover_dir(name: str) -> bool:
    """Whether ``name`` (inside a workspace) is a create or drop cut short by a crash."""
    return name.startswith((_CREATING_PREFIX, _TRASH_PREFIX))


def is_collection_dir_name(name: str) -> bool:
    """Whether ``name`` (inside a workspace) may be a collection (not hidden, not a
    leftover of a create or drop)."""
    return not name.startswith(".")


def is_collection_file(name: str) -> bool:
    """Whether ``name`` is a file KeelDB may create inside a collection directory."""
    return bool(
        name == MANIFEST_NAME
        or _WAL_RE.match(name)
        or _SEGMENT_RE.match(name)
        or _TOMB_RE.match(name)
        or name.endswith(TMP_SUFFIX)
    )
