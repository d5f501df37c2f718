"""Documents, text_search and hybrid_search over HTTP (in process, real engine): the wire
shape of every answer carrying documents, and the 400s for malformed text requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from server_util import COL, assert_error, create

DOCS = ["the brown fox", "a lazy dog", None, "fox and dog and fox"]


@pytest.fixture
def api_docs(api: Any) -> Any:
    create(api, "c", dim=4, metric="l2")
    body = {
        "ids": ["a", "b", "c", "d"],
        "vectors": np.eye(4).tolist(),
        "metadata": [{"i": i} for i in range(4)],
        "documents": DOCS,
    }
    resp = api.post(f"{COL}/c/upsert", json=body)
    assert resp.status_code == 200, resp.text
    return api


def test_the_routes_are_in_the_openapi_schema(api: Any) -> None:
    schema = api.get("/openapi.json").json()
    for action in ("text_search", "hybrid_search"):
        assert "post" in schema["paths"][f"/v1/workspaces/{{ws}}/collections/{{name}}/{action}"]
    upsert = schema["components"]["schemas"]["UpsertRequest"]["properties"]
    assert "documents" in upsert
    hit = schema["components"]["schemas"]["HitModel"]["properties"]
    assert {"document", "score"} <= set(hit)


def test_get_and_scan_carry_the_document(api_docs: Any) -> None:
    records = api_docs.post(f"{COL}/c/get", json={"ids": ["a", "c", "zz"]}).json()["records"]
    assert records[0] == {
        "id": "a",
        "vector": [1, 0, 0, 0],
        "metadata": {"i": 0},
        "document": DOCS[0],
    }
    assert records[1]["document"] is None and records[2] is None
    page = api_docs.post(f"{COL}/c/scan", json={}).json()
    assert [r["document"] for r in page["records"]] == DOCS


def test_vector_hits_carry_document_and_a_null_score(api_docs: Any) -> None:
    hits = api_docs.post(f"{COL}/c/search", json={"vector": [1, 0, 0, 0], "k": 1}).json()["hits"]
    assert hits == [
        {"id": "a", "distance": 0.0, "metadata": {"i": 0}, "document": DOCS[0], "score": None}
    ]
    body = {"vector": [1, 0, 0, 0], "k": 1, "with_documents": False}
    assert api_docs.post(f"{COL}/c/search", json=body).json()["hits"][0]["document"] is None
    body = {"vectors": [[0, 1, 0, 0]], "k": 1, "with_documents": False}
    batch = api_docs.post(f"{COL}/c/search_batch", json=body).json()["results"]
    assert batch[0][0]["id"] == "b" and batch[0][0]["document"] is None


def test_text_search_answers_scores_best_first(api_docs: Any) -> None:
    resp = api_docs.post(f"{COL}/c/text_search", json={"query": "fox", "k": 5})
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert [h["id"] for h in hits] == ["d", "a"]  # "fox" twice in a short document wins
    assert hits[0]["score"] > hits[1]["score"] > 0
    assert all(h["distance"] == -h["score"] for h in hits)
    assert hits[0]["document"] == DOCS[3] and hits[0]["metadata"] == {"i": 3}
    body = {"query": "fox", "filter": {"i": {"$lt": 3}}, "with_metadata": False}
    hits = api_docs.post(f"{COL}/c/text_search", json=body).json()["hits"]
    assert [(h["id"], h["metadata"]) for h in hits] == [("a", None)]


def test_hybrid_search_fuses_both_sides(api_docs: Any) -> None:
    body = {"query": "dog", "vector": [0, 0, 1, 0], "k": 4, "fusion": "rrf", "rrf_k": 1}
    resp = api_docs.post(f"{COL}/c/hybrid_search", json=body)
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert len(hits) == 4
    # "c" is first by vector, "b" and "d" are the only text matches: "c" is not last
    assert {h["id"] for h in hits} == {"a", "b", "c", "d"}
    assert hits[0]["score"] >= hits[-1]["score"]
    weighted = {**body, "fusion": "weighted", "weights": [0, 1]}
    del weighted["rrf_k"]
    hits = api_docs.post(f"{COL}/c/hybrid_search", json=weighted).json()["hits"]
    assert hits[0]["id"] == "b"  # text only: the best BM25 match ("dog" in a short text)
    body = {"query": "dog", "vector": [0, 0, 1]}
    resp = api_docs.post(f"{COL}/c/hybrid_search", json=body)
    assert_error(resp, 400, "dimension_mismatch")


def test_transaction_upserts_carry_documents(api_docs: Any) -> None:
    ops = [{"op": "upsert", "ids": ["t"], "vectors": [[1, 1, 0, 0]], "documents": ["walrus"]}]
    resp = api_docs.post(f"{COL}/c/transaction", json={"ops": ops})
    assert resp.status_code == 200, resp.text
    hits = api_docs.post(f"{COL}/c/text_search", json={"query": "walrus"}).json()["hits"]
    assert [h["id"] for h in hits] == ["t"]
    ops[0]["documents"] = ["one", "two"]
    body = assert_error(
        api_docs.post(f"{COL}/c/transaction", json={"ops": ops}), 400, "invalid_argument"
    )
    assert body["message"].startswith("ops[0]:")


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("hybrid_search", {"query": "fox"}, "needs vector="),
        ("hybrid_search", {"query": "fox", "vector": [1, 0, 0, 0], "fusion": "max"}, "fusion"),
        ("hybrid_search", {"query": "fox", "vector": [1, 0, 0, 0], "rrf_k": "3"}, "rrf_k"),
        ("hybrid_search", {"query": "fox", "vector": [1, 0, 0, 0], "weights": [True, 1]}, ""),
        ("text_search", {"query": 3}, "query"),
        ("text_search", {"query": "fox", "k": 0}, "k must be"),
        ("text_search", {"query": "fox", "bogus": 1}, "bogus"),
        ("text_search", {"query": "fox", "with_documents": "false"}, "with_documents"),
        ("text_search", {"query": "fox", "filter": {"$bad": 1}}, ""),
        ("upsert", {"ids": ["x"], "vectors": [[1, 0, 0, 0]], "documents": [7]}, "documents"),
        ("upsert", {"ids": ["x"], "vectors": [[1, 0, 0, 0]], "documents": []}, "documents"),
    ],
)
def test_malformed_text_requests_are_400(
    api_docs: Any, route: str, body: dict[str, Any], message: str
) -> None:
    resp = api_docs.post(f"{COL}/c/{route}", json=body)
    err = assert_error(resp, 400, "invalid_argument")
    assert message in err["message"]


@pytest.mark.parametrize(
    "text",
    [
        {"min_token_len": "a"},  # a ValueError from int()
        {"name": "standard", "options": 5},  # was a TypeError: a 500
        {"foo": 1},
    ],
)
def test_a_bad_analyser_config_is_a_400_and_creates_nothing(api: Any, text: Any) -> None:
    resp = api.put(f"{COL}/t", json={"dim": 2, "text": text})
    assert_error(resp, 400, "invalid_argument")
    assert api.get("/v1/collections").json() == {"collections": []}


def test_an_unknown_embedding_function_is_a_400_naming_it(api: Any) -> None:
    resp = api.put(f"{COL}/t", json={"embedding": {"name": "nope", "config": {}}})
    message = assert_error(resp, 400, "invalid_argument")["message"]
    assert "unknown embedding function 'nope'" in message and "minilm" in message
    bad = api.put(f"{COL}/t", json={"embedding": {"name": "minilm", "config": {"bogus": 1}}})
    assert (
        "embedding function 'minilm' is unavailable"
        in assert_error(bad, 400, "invalid_argument")["message"]
    )
    assert api.get("/v1/collections").json() == {"collections": []}


def test_string_queries_on_a_collection_without_an_embedding_function_are_400(
    api_docs: Any,
) -> None:
    for route, body in (
        ("search", {"vector": "words"}),
        ("explain", {"vector": "words"}),
        ("search_batch", {"vectors": ["words"]}),
        ("upsert", {"ids": ["z"], "documents": ["words"]}),
    ):
        assert_error(api_docs.post(f"{COL}/c/{route}", json=body), 400, "invalid_argument")
