"""Fused-QKV attention inside traced modules (docs/formats.md §6, "Attention").

Two layouts are recognised, so that a torch model that no family rule covers still gets its
heads (``Network.attention``) and ``ov`` pairs:

* **timm-style** ``Attention``: a module with a ``num_heads`` attribute, a Linear ``qkv``
  (3·d_attn, d_model) whose rows are Q, K, V and a Linear ``proj`` (d_model, d_attn) — timm's
  ``VisionTransformer`` blocks, and any module written the same way;
* ``torch.nn.MultiheadAttention`` with one ``in_proj_weight`` (3·d, d) and ``out_proj``; it is
  traced as a single call, which reads the stream with ``in_proj_weight`` and writes it with
  ``out_proj``.

In both the fused (Q; K; V) matrix is the attention sublayer's reader of the stream (the same
stacked reader the transformer families pair with), Q, K, V are its row blocks, and the
per-head pairs are the transformer rule's ``ov`` pairs; the fused matrix is never paired with
the output projection directly (what connects them is the attention pattern, not a product).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import GraphBuilder
from .network import AttentionLayer

__all__ = ["FusedAttention", "find_fused_attention", "add_fused_attention"]


@dataclass(frozen=True)
class FusedAttention:
    """One recognised attention module: its ``name``, ``heads``, the reader (fused QKV) and
    writer (output projection) weight keys, and ``leaf`` (traced as one call: MHA)."""

    name: str
    heads: int
    qkv_key: str
    qkv_bias: str
    o_module: str
    leaf: bool


def find_fused_attention(module) -> list[FusedAttention]:
    """Every timm-style ``Attention`` and ``nn.MultiheadAttention`` of ``module``, in order."""
    import torch.nn as nn

    out = []
    for n, m in module.named_modules():
        pre = f"{n}." if n else ""
        if isinstance(m, nn.MultiheadAttention):
            if getattr(m, "in_proj_weight", None) is not None and isinstance(m.out_proj, nn.Linear):
                out.append(FusedAttention(n, int(m.num_heads), f"{pre}in_proj_weight", f"{pre}in_proj_bias",
                                          f"{pre}out_proj", True))  # fmt: skip
            continue
        qkv, proj, heads = getattr(m, "qkv", None), getattr(m, "proj", None), getattr(m, "num_heads", None)
        if (
            isinstance(qkv, nn.Linear)
            and isinstance(proj, nn.Linear)
            and isinstance(heads, int)
            and heads > 0
            and qkv.out_features == 3 * proj.in_features
            and proj.in_features % heads == 0
        ):
            out.append(FusedAttention(n, heads, f"{pre}qkv.weight", f"{pre}qkv.bias", f"{pre}proj", False))
    return out


def add_fused_attention(b: GraphBuilder, index: int, att: FusedAttention, qkv: str, o: str) -> None:
    """Q, K, V row blocks of the fused matrix ``qkv``, the :class:`AttentionLayer` and the ``ov``
    pairs V[kv h] → O[head h] (``o``: the output projection's matrix)."""
    from .architectures.transformer import _head_slice, add_ov_pairs

    rows, d_model = b.infos[qkv].shape
    d = rows // 3
    parts = {
        w: _head_slice(b, qkv, f"{qkv}[{w}]", slice(i * d, (i + 1) * d), 0, w) for i, w in enumerate("qkv")
    }
    head_dim = d // att.heads
    b.attention.append(
        AttentionLayer(index, att.heads, att.heads, head_dim, d_model, parts["q"], parts["k"], parts["v"], o)
    )
    add_ov_pairs(b, index, parts["v"], o, heads=att.heads, kv_heads=att.heads, head_dim=head_dim)
