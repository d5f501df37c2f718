"""Graph storage kinds (``quantization``): build, save/load, trailer versions, extend."""

from __future__ import annotations

import os

import faiss
import numpy as np
import pytest

from keeldb.errors import CorruptionError
from keeldb.index.hnsw import SQ8_CANDIDATE_FACTOR, HnswIndex
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import HEADER_SIZE
from keeldb.storage.framed import pack_header
from keeldb.storage.manifest import default_quantization

KINDS = {"none": 1, "fp16": 2, "sq8": 3}  # quantization -> trailer version


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("quantization", sorted(KINDS))
@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_kind_round_trips_through_its_file(
    tmp_path: object, quantization: str, metric: str
) -> None:
    vectors = _vectors(600, 16)
    if metric == "cosine":
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    graph = HnswIndex.build(vectors[:400], metric, 8, 40, quantization=quantization)
    assert graph.quantization == quantization
    assert graph.exact_scores is (quantization == "none")
    path = os.path.join(str(tmp_path), "g.hnsw")
    graph.save(OsFileSystem(), path)
    loaded = HnswIndex.load(path, 400, 16, metric)
    assert loaded.quantization == quantization
    assert loaded.header is not None and loaded.header.version == KINDS[quantization]
    loaded.verify_storage()
    # the stored copy: exact for float32, close for the reduced kinds
    err = np.abs(loaded.decoded_vectors() - vectors[:400]).max()
    assert err < {"none": 1e-7, "fp16": 1e-2, "sq8": 0.1}[quantization]
    grown = loaded.extend(vectors[400:])
    assert grown.quantization == quantization and grown.index.ntotal == 600


def test_default_kind_per_metric() -> None:
    vectors = _vectors(300, 8)
    for metric in ("cosine", "l2", "ip"):
        assert HnswIndex.build(vectors, metric, 8, 40).quantization == default_quantization(metric)
    assert default_quantization("cosine") == "fp16" and default_quantization("l2") == "none"


def test_sq8_graph_is_an_8bit_scalar_quantiser_a_byte_per_component() -> None:
    graph = HnswIndex.build(_vectors(500, 32), "l2", 8, 40, quantization="sq8")
    storage = faiss.downcast_index(graph.index.storage)
    assert storage.sq.qtype == faiss.ScalarQuantizer.QT_8bit and storage.code_size == 32
    assert graph.stats().memory_bytes < 500 * (32 + 8 * 2 * 4 + 64)


def test_sq8_walk_returns_more_candidates_within_ef() -> None:
    sq8 = HnswIndex.build(_vectors(300, 8), "l2", 8, 40, quantization="sq8")
    fp16 = HnswIndex.build(_vectors(300, 8), "l2", 8, 40, quantization="fp16")
    assert sq8.candidates(10, 64) == SQ8_CANDIDATE_FACTOR * 10
    assert sq8.candidates(10, 12) == 12  # never a wider walk than max(ef, k)
    assert sq8.candidates(10, 4) == 10
    assert fp16.candidates(10, 64) == 10


def test_sq8_trailer_relabelled_as_another_kind_is_damage(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "g.hnsw")
    HnswIndex.build(_vectors(300, 8), "l2", 8, 40, quantization="sq8").save(OsFileSystem(), path)
    h = HnswIndex.load(path, 300, 8, "l2").header
    assert h is not None
    relabelled = type(h)(
        h.magic, 2, h.flags, h.rows, h.aux, h.payload_len, h.payload_crc, h.aux2, h.aux3
    )
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size - HEADER_SIZE)
        f.write(pack_header(relabelled))
    with pytest.raises(CorruptionError, match="disagrees with the index kind"):
        HnswIndex.load(path, 300, 8, "l2")
