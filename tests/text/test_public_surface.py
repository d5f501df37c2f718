"""The public surfaces of keeldb.text and keeldb.embeddings change only on purpose."""

from __future__ import annotations

import keeldb.embeddings
import keeldb.text


def test_text_all() -> None:
    assert keeldb.text.__all__ == [
        "DEFAULT_DEPTH", "DEFAULT_RRF_K", "ENGLISH_STOP_WORDS", "Analyzer", "BM25Params",
        "Chunk", "ChunkRecords", "CollectionStats", "MemPostings", "PostingsArrays",
        "PostingsUnit", "SealedPostings", "TextHits", "TokenBatch", "bm25_search", "chunk",
        "chunk_records", "chunk_spans", "collection_stats", "match_mask", "rrf", "weighted",
    ]  # fmt: skip
    for name in keeldb.text.__all__:
        assert hasattr(keeldb.text, name)


def test_embeddings_all() -> None:
    assert keeldb.embeddings.__all__ == sorted(keeldb.embeddings.__all__)
    assert keeldb.embeddings.__all__ == [
        "EmbeddingFunction", "EmbeddingFunctionError", "MiniLM", "OpenAIEmbedding",
        "SentenceTransformerEmbedding", "available", "from_config", "register",
    ]  # fmt: skip
    for name in keeldb.embeddings.__all__:
        obj = getattr(keeldb.embeddings, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_importing_embeddings_imports_no_optional_dependency() -> None:
    import subprocess
    import sys

    code = (
        "import sys, keeldb.embeddings, keeldb.text; "
        "bad = [m for m in ('tokenizers', 'sentence_transformers', 'torch') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
