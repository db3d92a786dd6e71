"""Architecture rules, one module per family, and their detection (docs/formats.md).

Detection order: an explicit ``architecture=``; GGUF ``general.architecture``; HF config.json
``model_type``; then characteristic tensor names. A family named by metadata (GGUF
``general.architecture``, config.json ``model_type``) is accepted only when its characteristic
tensor names occur in the source, else detection falls through to the names; a forced
``architecture=`` whose names occur nowhere is an :class:`~flagalign.errors.InputError`.
Families: ``bert``, ``gpt2``, ``llama``, ``resnet``, ``mobilenetv2``, ``efficientnet``,
``sequential``, ``generic``.
"""

from __future__ import annotations

import re

from ...errors import InputError
from ..graph import GraphBuilder
from ..network import Network
from ..sources.base import TensorSource

__all__ = ["FAMILIES", "detect_architecture", "build_network", "matches_family"]

FAMILIES = ("bert", "gpt2", "llama", "resnet", "mobilenetv2", "efficientnet", "sequential", "generic")

_PATTERNS = (
    ("bert", re.compile(r"encoder\.layer\.\d+\.attention\.self\.query\.weight$")),
    ("gpt2", re.compile(r"(^|\.)h\.\d+\.attn\.c_attn\.weight$")),
    ("llama", re.compile(r"(^|\.)layers\.\d+\.self_attn\.q_proj\.weight$")),
    ("llama", re.compile(r"^blk\.\d+\.attn_q\.weight$")),
    ("resnet", re.compile(r"(^|\.)layer\d+\.\d+\.conv1\.weight$")),
    ("mobilenetv2", re.compile(r"(^|\.)features\.\d+\.conv\.\d+\.weight$")),
    ("efficientnet", re.compile(r"(^|\.)_blocks\.\d+\._project_conv\.weight$")),
)
# One example key per family with required names (for error messages).
_EXAMPLES = {
    "bert": "encoder.layer.0.attention.self.query.weight",
    "gpt2": "h.0.attn.c_attn.weight",
    "llama": "layers.0.self_attn.q_proj.weight or blk.0.attn_q.weight",
    "resnet": "layer1.0.conv1.weight",
    "mobilenetv2": "features.2.conv.2.weight",
    "efficientnet": "_blocks.0._project_conv.weight",
}
_MODEL_TYPES = {"bert": "bert", "gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama"}


def matches_family(src: TensorSource, fam: str) -> bool:
    """True when some key of ``src`` has the characteristic name of family ``fam``."""
    pats = [pat for f, pat in _PATTERNS if f == fam]
    return any(pat.search(k) for pat in pats for k in src.entries)


def detect_architecture(src: TensorSource) -> str:
    """The family whose rules apply to ``src`` (``generic`` when none is recognised)."""
    from .generic import is_sequential

    cfg = src.config
    if src.format == "gguf":
        if cfg.get("general.architecture") in ("llama", "mistral", "qwen2") and matches_family(src, "llama"):
            return "llama"
        return "generic"
    mt = _MODEL_TYPES.get(str(cfg.get("model_type", "")).lower())
    if mt and matches_family(src, mt):
        return mt
    for fam, pat in _PATTERNS:
        if any(pat.search(k) for k in src.entries):
            return fam
    return "sequential" if is_sequential(src) else "generic"


def build_network(
    src: TensorSource,
    *,
    name: str,
    fold_norms: bool = True,
    architecture: str | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> Network:
    """Apply the family's rules to ``src`` and return the Network."""
    arch = architecture or detect_architecture(src)
    if arch not in FAMILIES:
        raise InputError(f"architecture={arch!r} is unknown; use one of {', '.join(FAMILIES)}")
    if arch in _EXAMPLES and not matches_family(src, arch):
        raise InputError(
            f"{src.path}: architecture={arch!r} does not match the tensor names (no key like "
            f"{_EXAMPLES[arch]}); omit architecture= to detect the family, or name the right one"
        )
    b = GraphBuilder(name, arch, src.path, fold_norms)
    cfg = src.config
    if arch == "bert":
        from .bert import build_bert

        build_bert(b, src, cfg, heads)
    elif arch == "gpt2":
        from .gpt2 import build_gpt2

        build_gpt2(b, src, cfg, heads)
    elif arch == "llama":
        from .llama import build_llama_gguf, build_llama_hf

        if src.format == "gguf":
            build_llama_gguf(b, src, cfg)
        else:
            build_llama_hf(b, src, cfg, heads, kv_heads)
    elif arch == "resnet":
        from .resnet import build_resnet

        build_resnet(b, src)
    elif arch in ("mobilenetv2", "efficientnet"):
        from .mbconv import build_mbconv

        build_mbconv(b, src, arch)
    else:
        from .generic import build_generic

        build_generic(b, src, sequential=arch == "sequential")
    _report_unused(b, src, arch)
    if not b.pairs:
        b.warnings.append("no adjacent pairs found: nothing for the pair diagnostics to analyse")
    return b.build()


def _report_unused(b: GraphBuilder, src: TensorSource, arch: str) -> None:
    """List every float weight tensor (≥ 2-D) that no rule used, so nothing vanishes silently."""
    from ..sources.base import natural_key

    used = {m.source_key for m in b.infos.values()} | {w for w, _ in b.skipped}
    for k in sorted(src.entries, key=natural_key):
        e = src.entries[k]
        if e.is_float and len(e.shape) >= 2 and k not in used:
            b.skip(k, f"not part of the {arch} rule")
