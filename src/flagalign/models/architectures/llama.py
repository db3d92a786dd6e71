"""Llama / SmolLM / Mistral-style decoders (HF safetensors or GGUF) → transformer layer graph.

Separate q/k/v/o projections with grouped-query attention (``kv_heads`` < ``heads``: query head
h uses kv-head h // (heads/kv_heads)), SwiGLU MLP (gate, up → down), RMSNorm gains
(``input_layernorm`` folded into Q/K/V, ``post_attention_layernorm`` into gate/up).

GGUF (llama.cpp) specifics, docs/formats.md "GGUF":

* names ``blk.N.attn_{q,k,v,output}``, ``blk.N.ffn_{gate,up,down}``, ``blk.N.{attn,ffn}_norm``;
* llama.cpp's converter permutes the rows of Q and K for its rotary-embedding layout: within each
  head the rows (r0..r_{d/2-1} | r_{d/2}..r_{d-1}) are interleaved to (r0, r_{d/2}, r1, ...)
  (``permute`` in convert_hf_to_gguf.py: reshape(n_head, 2, d/2, ·).swapaxes(1, 2)). We undo it
  (reshape(n_head, d/2, 2, ·).swapaxes(1, 2)), so row slices are the true HF heads. Only
  ``LlamaModel`` permutes (``general.architecture == "llama"``; Q/K biases too): ``qwen2`` files
  store Q/K as in HF and are read unchanged;
* ``blk.N.attn_{q,k,v,output}.bias`` (Qwen2's q/k/v biases) are attached when present;
* every shape is checked against ``llama.embedding_length``, ``feed_forward_length`` and the head
  counts; a mismatch is a :class:`~flagalign.errors.CorruptFileError`.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from ...errors import CorruptFileError
from ..graph import GraphBuilder
from ..sources.base import TensorSource
from ..symmetry import O, SIGNED_PERM
from .registry import Family
from .transformer import Block, Mat, add_embeddings_and_head, build_transformer, linear, mat, norm

__all__ = ["build_llama", "build_llama_hf", "build_llama_gguf", "unpermute_rotary", "FAMILY"]

# pre-norm RMSNorm stream: O(d_model) with the gains folded into the readers, sign flips and
# permutations (moving the gains) without folding (docs/theory.md eq. (72))
_RESIDUAL = (O, SIGNED_PERM)

_HF = re.compile(r"^(.*?)layers\.(\d+)\.self_attn\.q_proj\.weight$")
_GG = re.compile(r"^blk\.(\d+)\.attn_q\.weight$")


def unpermute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's Q/K row permutation (see module docstring)."""
    r = w.shape[0]
    return w.reshape(n_head, r // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_llama_hf(
    b: GraphBuilder, src: TensorSource, cfg: dict, heads: int | None = None, kv_heads: int | None = None
) -> None:
    found = [(m.group(1), int(m.group(2))) for k in src.entries if (m := _HF.match(k))]
    p = found[0][0]
    layers = sorted(n for _, n in found)
    d_model = src.shape(f"{p}layers.{layers[0]}.self_attn.q_proj.weight")[1]
    heads = heads or cfg.get("num_attention_heads")
    if not heads:
        from ...errors import InputError

        raise InputError(f"{src.path}: Llama weights without config.json: pass heads=N and kv_heads=M")
    kv_heads = kv_heads or cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or src.shape(f"{p}layers.{layers[0]}.self_attn.q_proj.weight")[0] // heads
    blocks = []
    for n in layers:
        L = f"{p}layers.{n}"
        a, m = f"{L}.self_attn", f"{L}.mlp"
        blocks.append(
            Block(
                n,
                L,
                q=linear(src, f"{a}.q_proj"),
                k=linear(src, f"{a}.k_proj"),
                v=linear(src, f"{a}.v_proj"),
                o=linear(src, f"{a}.o_proj"),
                gate=linear(src, f"{m}.gate_proj"),
                up=linear(src, f"{m}.up_proj"),
                down=linear(src, f"{m}.down_proj"),
                attn_norm=norm(src, f"{L}.input_layernorm.weight"),
                mlp_norm=norm(src, f"{L}.post_attention_layernorm.weight"),
            )
        )
    build_transformer(b, blocks, heads=heads, kv_heads=kv_heads, head_dim=head_dim, d_model=d_model,
                      residual_symmetry=_RESIDUAL)  # fmt: skip
    add_embeddings_and_head(b, src, [f"{p}embed_tokens.weight"], "lm_head.weight", "embed_tokens")


def _gguf_qk(src: TensorSource, base: str, n_head: int | None) -> Mat:
    """Q or K (``base`` = ``blk.N.attn_q``/``attn_k``) with its bias; rotary permutation undone
    (rows and bias alike, as the converter permutes both) when ``n_head`` is given."""
    if n_head is None:
        return mat(src, f"{base}.weight", bias_key=f"{base}.bias")
    m = mat(
        src,
        f"{base}.weight",
        bias_key=f"{base}.bias",
        transform=lambda w: unpermute_rotary(w, n_head),
        note="llama.cpp rotary row permutation undone",
    )
    if m.bias is not None:
        m = replace(m, bias=lambda f=m.bias: unpermute_rotary(f(), n_head))
    return m


def build_llama_gguf(b: GraphBuilder, src: TensorSource, cfg: dict) -> None:
    arch = cfg.get("general.architecture", "llama")
    g = lambda k: cfg.get(f"{arch}.{k}")  # noqa: E731
    for k in ("embedding_length", "feed_forward_length", "attention.head_count"):
        if not isinstance(g(k), (int, np.integer)):
            raise CorruptFileError(
                f"{src.path}: GGUF metadata lacks {arch}.{k}; re-convert the model with llama.cpp"
            )
    d_model, d_ff = int(g("embedding_length")), int(g("feed_forward_length"))
    heads = int(g("attention.head_count"))
    kv_heads = int(g("attention.head_count_kv") or heads)
    head_dim = int(g("attention.key_length") or d_model // heads)
    layers = sorted(int(m.group(1)) for k in src.entries if (m := _GG.match(k)))
    expect = {
        "attn_q": (heads * head_dim, d_model),
        "attn_k": (kv_heads * head_dim, d_model),
        "attn_v": (kv_heads * head_dim, d_model),
        "attn_output": (d_model, heads * head_dim),
        "ffn_gate": (d_ff, d_model),
        "ffn_up": (d_ff, d_model),
        "ffn_down": (d_model, d_ff),
    }
    for n in layers:
        for t, shp in expect.items():
            key = f"blk.{n}.{t}.weight"
            if key not in src or src.shape(key) != shp:
                got = src.shape(key) if key in src else "missing"
                raise CorruptFileError(
                    f"{src.path}: tensor {key} is {got}, metadata implies {shp}; the GGUF file is inconsistent"
                )
    permuted = arch == "llama"  # only llama.cpp's LlamaModel permutes Q/K (not Qwen2Model)
    blocks = []
    for n in layers:
        L = f"blk.{n}"
        q = _gguf_qk(src, f"{L}.attn_q", heads if permuted else None)
        k = _gguf_qk(src, f"{L}.attn_k", kv_heads if permuted else None)
        blocks.append(
            Block(
                n,
                L,
                q=q,
                k=k,
                v=linear(src, f"{L}.attn_v"),
                o=linear(src, f"{L}.attn_output"),
                gate=linear(src, f"{L}.ffn_gate"),
                up=linear(src, f"{L}.ffn_up"),
                down=linear(src, f"{L}.ffn_down"),
                attn_norm=norm(src, f"{L}.attn_norm.weight"),
                mlp_norm=norm(src, f"{L}.ffn_norm.weight"),
            )
        )
    build_transformer(b, blocks, heads=heads, kv_heads=kv_heads, head_dim=head_dim, d_model=d_model,
                      residual_symmetry=_RESIDUAL)  # fmt: skip
    add_embeddings_and_head(b, src, ["token_embd.weight"], "output.weight", "token_embd")


def build_llama(
    b: GraphBuilder, src: TensorSource, cfg: dict, heads: int | None = None, kv_heads: int | None = None
) -> None:
    """HF (``layers.N.self_attn.q_proj``) or GGUF (``blk.N.attn_q``) Llama-style decoder."""
    if src.format == "gguf":
        build_llama_gguf(b, src, cfg)
    else:
        build_llama_hf(b, src, cfg, heads, kv_heads)


FAMILY = Family(
    "llama",
    build_llama,
    (
        re.compile(r"(^|\.)layers\.\d+\.self_attn\.q_proj\.weight$"),
        re.compile(r"^blk\.\d+\.attn_q\.weight$"),
    ),
    "layers.0.self_attn.q_proj.weight or blk.0.attn_q.weight",
    ("llama", "mistral", "qwen2"),
)
