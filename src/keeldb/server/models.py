"""Request and response bodies of the HTTP API (pydantic models; they make /openapi.json).

Requests forbid unknown fields, so a misspelt parameter is a 400, not silently ignored.
Vectors are typed as "list of numbers or encoded array" (see :mod:`keeldb.protocol.wire`);
their shape, NaN/infinity and dimension are checked when they are decoded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = [
    "BackupReportModel",
    "BackupRequest",
    "CollectionInfoModel",
    "CompactionReportModel",
    "CountRequest",
    "CountResponse",
    "CreateCollectionRequest",
    "DeleteRequest",
    "DeleteResponse",
    "DroppedResponse",
    "EmbeddingSpec",
    "EncodedArray",
    "ErrorResponse",
    "GetRequest",
    "GetResponse",
    "HealthResponse",
    "HitModel",
    "HybridSearchRequest",
    "ListCollectionsResponse",
    "ListWorkspacesResponse",
    "OkResponse",
    "RecordModel",
    "ScanRequest",
    "ScanResponse",
    "SearchBatchRequest",
    "SearchBatchResponse",
    "SearchRequest",
    "SearchResponse",
    "StatsModel",
    "TextSearchRequest",
    "TransactionDelete",
    "TransactionRequest",
    "TransactionResponse",
    "TransactionUpsert",
    "UpdateRequest",
    "UpdateResponse",
    "UpsertRequest",
    "UpsertResponse",
]

Metric = Literal["cosine", "l2", "ip"]
VectorEncodingField = Literal["json", "base64"]
Filter = dict[str, Any]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodedArray(BaseModel):
    """A float32 array as base64 of its little-endian bytes, row-major."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32"] = "float32"
    shape: list[int] = Field(description="[dim] for one vector, [n, dim] for a batch")
    data: str = Field(description="base64 of n*dim little-endian float32 values")


Vector = list[float] | EncodedArray
Vectors = list[list[float]] | EncodedArray


class ErrorResponse(BaseModel):
    """Every error: a stable code (see keeldb.errors) and a human-readable message."""

    error: str = Field(examples=["collection_not_found"])
    message: str


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str


class EmbeddingSpec(_Request):
    """An embedding function as the manifest records it."""

    name: StrictStr = Field(description="its registered name, e.g. minilm")
    config: dict[str, Any] = Field(default_factory=dict, description="its constructor's options")


class CreateCollectionRequest(_Request):
    """Parameters of ``create_collection``; the name and workspace come from the path.

    ``dim`` is required, as in the embedded API. Numbers and booleans must be JSON numbers
    and booleans: ``"3"`` or ``3.0`` for ``dim`` is a 400, never coerced (issue 17).
    """

    dim: StrictInt | None = Field(
        None, description="vector length (required unless embedding is given)"
    )
    metric: Metric = "cosine"
    m: StrictInt = 16
    ef_construction: StrictInt = 200
    ef_search: StrictInt = 64
    exist_ok: StrictBool = False
    quantization: Literal["none", "fp16", "sq8"] | None = Field(
        default=None, description="graph vector storage; null: fp16 under cosine, else none"
    )
    embedding: EmbeddingSpec | None = Field(
        None,
        description="an embedding function by its registered name and config, re-created "
        "by the server's registry (400 when unknown); dim may then be omitted",
    )
    text: dict[str, Any] | None = Field(
        None,
        description='the full-text analyser: its options (e.g. {"language": null}) or its '
        "config; null: the default (English)",
    )


class CollectionInfoModel(BaseModel):
    name: str
    workspace: str
    dim: int
    metric: str
    count: int
    m: int
    ef_construction: int
    ef_search: int
    created_at: float
    index_type: str
    quantization: str = ""
    embedding: str | None = Field(None, description="the embedding function's name, if any")
    analyzer: dict[str, Any] | None = Field(None, description="the full-text analyser's config")


class ListCollectionsResponse(BaseModel):
    collections: list[CollectionInfoModel]


class ListWorkspacesResponse(BaseModel):
    workspaces: list[str]


class DroppedResponse(BaseModel):
    dropped: bool


class OkResponse(BaseModel):
    ok: bool


class UpsertRequest(_Request):
    ids: list[str]
    vectors: Vectors | None = Field(
        None,
        description="one per id; omitted: computed from the documents by the collection's "
        "embedding function (every record then needs a document)",
    )
    metadata: list[dict[str, Any] | None] | None = Field(
        None, description="one object (or null: keep existing) per id"
    )
    documents: list[str | None] | None = Field(
        None,
        description="one text (or null: keep the existing record's) per id, indexed for "
        "text_search; omitted: every record keeps its document",
    )


class UpsertResponse(BaseModel):
    upserted: int


class GetRequest(_Request):
    ids: list[str]
    vector_encoding: VectorEncodingField = "json"


class RecordModel(BaseModel):
    id: str
    vector: Vector
    metadata: dict[str, Any]
    document: str | None = Field(None, description="the record's text; null when it has none")


class GetResponse(BaseModel):
    records: list[RecordModel | None] = Field(description="one per requested id, null if absent")


class DeleteRequest(_Request):
    ids: list[str] | None = None
    filter: Filter | None = None


class DeleteResponse(BaseModel):
    deleted: int


class CountRequest(_Request):
    filter: Filter | None = None


class CountResponse(BaseModel):
    count: int


class SearchRequest(_Request):
    vector: Vector | StrictStr = Field(
        description="the query vector, or a string embedded by the collection's embedding "
        "function (400 when it has none)"
    )
    k: int = 10
    ef: int | None = None
    filter: Filter | None = None
    exact: StrictBool = False
    with_metadata: StrictBool = True
    with_documents: StrictBool = True


class HitModel(BaseModel):
    id: str
    distance: float = Field(description="smaller = closer; -score for text and hybrid hits")
    metadata: dict[str, Any] | None  # null when the search had with_metadata=false
    document: str | None = Field(
        None, description="the record's text; null when it has none or with_documents=false"
    )
    score: float | None = Field(
        None, description="BM25 or fused score (larger = better); null for vector search"
    )


class SearchResponse(BaseModel):
    hits: list[HitModel]


class SearchBatchRequest(_Request):
    vectors: Vectors | list[StrictStr] = Field(
        description="the query vectors, or a non-empty list of strings embedded by the "
        "collection's embedding function (400 when it has none)"
    )
    k: int = 10
    ef: int | None = None
    filter: Filter | None = None
    exact: StrictBool = False
    with_metadata: StrictBool = True
    with_documents: StrictBool = True


class SearchBatchResponse(BaseModel):
    results: list[list[HitModel]]


class TextSearchRequest(_Request):
    """``Collection.text_search``: BM25 over the documents."""

    query: StrictStr = Field(description="analysed like the documents")
    k: int = 10
    filter: Filter | None = None
    with_metadata: StrictBool = True
    with_documents: StrictBool = True


class HybridSearchRequest(_Request):
    """``Collection.hybrid_search``: dense and BM25 candidates fused into one ranking."""

    query: StrictStr = Field(description="the BM25 side's query")
    k: int = 10
    vector: Vector | None = Field(
        None,
        description="the dense query; null: computed by the collection's embedding "
        "function (400 when it has none)",
    )
    filter: Filter | None = None
    fusion: StrictStr = Field("rrf", description="rrf or weighted")
    rrf_k: StrictFloat | StrictInt | None = Field(
        None, description="rrf only: the constant in w / (rrf_k + rank); null: 10"
    )
    weights: list[StrictFloat | StrictInt] | None = Field(
        None, description="(dense, text) weights, each >= 0; null: equal"
    )


class ScanRequest(_Request):
    filter: Filter | None = None
    limit: int = 100
    cursor: str | None = None
    vector_encoding: VectorEncodingField = "json"


class ScanResponse(BaseModel):
    records: list[RecordModel]
    next_cursor: str | None


class PartBytesModel(BaseModel):
    resident_bytes: int = Field(description="held in the server process's memory now")
    disk_bytes: int = Field(description="bytes of the part's files")


class SegmentStatsModel(BaseModel):
    segment_id: int
    kind: str
    rows: int
    live: int
    deleted: int
    disk_bytes: int
    memory_bytes: int
    hnsw_levels: dict[str, int]
    hnsw_avg_edges: float
    parts: dict[str, PartBytesModel] = Field(default_factory=dict, description="bytes per part")
    resident_bytes: int = 0


class TextIndexStatsModel(BaseModel):
    documents: int
    terms: int
    postings: int
    memory_bytes: int
    disk_bytes: int


class StatsModel(BaseModel):
    name: str
    workspace: str
    live_count: int
    deleted_count: int
    segments: list[SegmentStatsModel]
    index_type: str
    hnsw_levels: dict[str, int]
    hnsw_avg_edges: float
    memory_bytes: int
    disk_bytes: int
    wal_bytes: int
    parts: dict[str, PartBytesModel] = Field(
        default_factory=dict, description="bytes per part, summed over units"
    )
    resident_bytes: int = 0
    text: TextIndexStatsModel | None = None
    embedding: str | None = Field(None, description="the embedding function's name, if any")
    analyzer: dict[str, Any] | None = Field(None, description="the full-text analyser's config")


class CompactionReportModel(BaseModel):
    segments_before: int
    segments_after: int
    rows_removed: int
    rows_indexed: int
    duration_s: float


class UpdateRequest(_Request):
    ids: list[str]
    metadata: list[dict[str, Any]] = Field(
        description="one object per id: merged into the record's (a key given as null is "
        "removed) or replacing it, per mode"
    )
    mode: Literal["merge", "replace"] = "merge"


class UpdateResponse(BaseModel):
    missing: list[str] = Field(description="ids that do not exist (not created)")


class TransactionUpsert(_Request):
    op: Literal["upsert"]
    ids: list[str]
    vectors: Vectors | None = Field(
        None,
        description="one per id; omitted: computed from the documents by the collection's "
        "embedding function (every record then needs a document)",
    )
    metadata: list[dict[str, Any] | None] | None = Field(
        None, description="one object (or null: keep existing) per id"
    )
    documents: list[str | None] | None = Field(
        None,
        description="one text (or null: keep the existing record's) per id, indexed for "
        "text_search; omitted: every record keeps its document",
    )


class TransactionDelete(_Request):
    op: Literal["delete"]
    ids: list[str]


TransactionOp = Annotated[TransactionUpsert | TransactionDelete, Field(discriminator="op")]


class TransactionRequest(_Request):
    ops: list[TransactionOp] = Field(description="applied in order, all or nothing")


class TransactionResponse(BaseModel):
    upserted: int
    deleted: int
    replaced: int


class BackupRequest(_Request):
    name: str | None = Field(
        None,
        description="directory name under the server's backup directory (the collection-name "
        "rule); null: backup-<UTC time>-<random>",
    )


class BackupReportModel(BaseModel):
    path: str
    collections: list[str]
    files: int
    bytes: int
    seconds: float
