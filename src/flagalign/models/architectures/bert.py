"""BERT / MiniLM (post-LN encoder) → transformer layer graph (docs/formats.md, "BERT").

Keys (an optional ``bert.`` prefix is stripped): ``encoder.layer.N.attention.self.{query,key,
value}``, ``attention.output.dense`` (O), ``intermediate.dense`` (up), ``output.dense`` (down).
Post-LN: the norm in front of block N's Q/K/V is block N-1's ``output.LayerNorm`` (the
embedding LayerNorm for N = 0) and the norm in front of its MLP is ``attention.output.LayerNorm``.
"""

from __future__ import annotations

import re

from ...errors import InputError
from ..graph import GraphBuilder
from ..sources.base import TensorSource
from ..symmetry import PERM
from .registry import Family
from .transformer import Block, add_embeddings_and_head, add_listed, build_transformer, linear, mat, norm

__all__ = ["build_bert", "detect_prefix", "FAMILY"]

_LAYER = re.compile(r"^(.*?)encoder\.layer\.(\d+)\.attention\.self\.query\.weight$")


def detect_prefix(src: TensorSource) -> str | None:
    for k in src.entries:
        m = _LAYER.match(k)
        if m:
            return m.group(1)
    return None


def build_bert(
    b: GraphBuilder, src: TensorSource, cfg: dict, heads: int | None = None, kv_heads: int | None = None
) -> None:
    p = detect_prefix(src) or ""
    layers = sorted({int(m.group(2)) for k in src.entries if (m := _LAYER.match(k))})
    heads = heads or cfg.get("num_attention_heads")
    if not heads:
        raise InputError(
            f"{src.path}: BERT weights without config.json: pass heads=N (number of attention heads)"
        )
    d_model = src.shape(f"{p}encoder.layer.{layers[0]}.attention.self.query.weight")[1]
    head_dim = d_model // heads
    blocks = []
    for n in layers:
        L = f"{p}encoder.layer.{n}"
        prev = f"{p}encoder.layer.{n - 1}.output.LayerNorm" if n > layers[0] else f"{p}embeddings.LayerNorm"
        blocks.append(
            Block(
                n,
                L,
                q=linear(src, f"{L}.attention.self.query"),
                k=linear(src, f"{L}.attention.self.key"),
                v=linear(src, f"{L}.attention.self.value"),
                o=linear(src, f"{L}.attention.output.dense"),
                up=linear(src, f"{L}.intermediate.dense"),
                down=linear(src, f"{L}.output.dense"),
                attn_norm=norm(src, f"{prev}.weight", f"{prev}.bias"),
                mlp_norm=norm(
                    src, f"{L}.attention.output.LayerNorm.weight", f"{L}.attention.output.LayerNorm.bias"
                ),
            )
        )
    # post-LN: the skip carries the LayerNorm output γ⊙n + β, so only permutations (moving γ, β)
    # act on the stream (docs/theory.md eq. (72)); MLP activation from config.json (HF default gelu)
    act = cfg.get("hidden_act", "gelu") if cfg else None
    build_transformer(b, blocks, heads=heads, kv_heads=heads, head_dim=head_dim, d_model=d_model, mlp_act=act,
                      residual_symmetry=(PERM, PERM))  # fmt: skip
    embeddings = [f"{p}embeddings.{e}_embeddings.weight" for e in ("word", "position", "token_type")]
    add_embeddings_and_head(b, src, embeddings, None, "")
    if f"{p}pooler.dense.weight" in src:
        add_listed(
            b,
            linear(src, f"{p}pooler.dense"),
            "pooler",
            "pooler reads only the [CLS] token: listed, not paired",
        )


FAMILY = Family(
    "bert",
    build_bert,
    (re.compile(r"encoder\.layer\.\d+\.attention\.self\.query\.weight$"),),
    "encoder.layer.0.attention.self.query.weight",
    ("bert",),
)
