"""GPT-2 (pre-LN decoder, HF ``Conv1D`` layout) → transformer layer graph (docs/formats.md).

``Conv1D`` stores weights as (in, out): every matrix is transposed to (out, in). The fused
``attn.c_attn`` (d_model, 3·d_model) is split into Q, K, V (rows 0:d, d:2d, 2d:3d after
transposing). ``ln_1`` is folded into Q/K/V, ``ln_2`` into ``mlp.c_fc``; ``ln_f`` precedes only
the (tied) LM head, which is not paired.
"""

from __future__ import annotations

import re

from ...errors import InputError
from ..graph import GraphBuilder
from ..sources.base import TensorSource
from ..symmetry import O, PERM
from .registry import Family
from .transformer import Block, add_embeddings_and_head, build_transformer, linear, mat, norm

__all__ = ["build_gpt2", "FAMILY"]

_LAYER = re.compile(r"^(.*?)h\.(\d+)\.attn\.c_attn\.weight$")


def build_gpt2(
    b: GraphBuilder, src: TensorSource, cfg: dict, heads: int | None = None, kv_heads: int | None = None
) -> None:
    found = [(m.group(1), int(m.group(2))) for k in src.entries if (m := _LAYER.match(k))]
    p = found[0][0]
    layers = sorted(n for _, n in found)
    heads = heads or cfg.get("n_head") or cfg.get("num_attention_heads")
    if not heads:
        raise InputError(
            f"{src.path}: GPT-2 weights without config.json: pass heads=N (number of attention heads)"
        )
    d = src.shape(f"{p}h.{layers[0]}.attn.c_attn.weight")[0]
    blocks = []
    for n in layers:
        L = f"{p}h.{n}"
        ca, cb = f"{L}.attn.c_attn.weight", f"{L}.attn.c_attn.bias"
        qkv = {
            w: mat(
                src,
                ca,
                name=f"{ca}[{w}]",
                transpose=True,
                rows=slice(i * d, (i + 1) * d),
                bias_key=cb,
                bias_slice=slice(i * d, (i + 1) * d),
                note=f"{w.upper()} rows of fused c_attn",
            )
            for i, w in enumerate("qkv")
        }
        blocks.append(
            Block(
                n,
                L,
                q=qkv["q"],
                k=qkv["k"],
                v=qkv["v"],
                o=linear(src, f"{L}.attn.c_proj", transpose=True),
                up=linear(src, f"{L}.mlp.c_fc", transpose=True),
                down=linear(src, f"{L}.mlp.c_proj", transpose=True),
                attn_norm=norm(src, f"{L}.ln_1.weight", f"{L}.ln_1.bias"),
                mlp_norm=norm(src, f"{L}.ln_2.weight", f"{L}.ln_2.bias"),
            )
        )
    # pre-norm LayerNorm stream: orthogonal maps fixing the all-ones direction when the gains are
    # folded, permutations otherwise (docs/theory.md eq. (72)); MLP activation from the config
    # (HF's default gelu_new when config.json omits it; unknown without a config)
    act = cfg.get("activation_function", "gelu_new") if cfg else None
    build_transformer(b, blocks, heads=heads, kv_heads=heads, head_dim=d // heads, d_model=d, mlp_act=act,
                      residual_symmetry=(O, PERM))  # fmt: skip
    add_embeddings_and_head(b, src, [f"{p}wte.weight", f"{p}wpe.weight"], "lm_head.weight", "wte")


FAMILY = Family(
    "gpt2",
    build_gpt2,
    (re.compile(r"(^|\.)h\.\d+\.attn\.c_attn\.weight$"),),
    "h.0.attn.c_attn.weight",
    ("gpt2",),
)
