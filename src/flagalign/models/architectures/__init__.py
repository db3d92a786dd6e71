"""Architecture rules, one module per family, and their detection (docs/formats.md).

Every family is one :class:`~.registry.Family` record (name, characteristic tensor-name
patterns, example key, config ``model_type`` values, build function) defined in its own module
and listed once in :data:`SUPPORTED_ARCHITECTURES`, in detection order.

Detection order: an explicit ``architecture=``; GGUF ``general.architecture`` or HF config.json
``model_type`` (a family's ``model_types``), accepted only when its characteristic tensor names
occur in the source; then characteristic tensor names alone; then ``sequential`` or
``generic``. A forced ``architecture=`` whose names occur nowhere is an
:class:`~flagalign.errors.InputError`.
"""

from __future__ import annotations

from ...errors import InputError
from ..graph import GraphBuilder
from ..network import Network
from ..sources.base import TensorSource
from . import bert, generic, gpt2, llama, mbconv, resnet
from .registry import Family

__all__ = ["FAMILIES", "SUPPORTED_ARCHITECTURES", "Family", "detect_architecture", "build_network",
           "matches_family"]  # fmt: skip

# One line per family, in detection order (name patterns are tried in this order).
SUPPORTED_ARCHITECTURES: dict[str, Family] = {
    f.name: f
    for f in (
        bert.FAMILY,
        gpt2.FAMILY,
        llama.FAMILY,
        resnet.FAMILY,
        mbconv.MOBILENETV2,
        mbconv.EFFICIENTNET,
        generic.SEQUENTIAL,
        generic.GENERIC,
    )
}
FAMILIES = tuple(SUPPORTED_ARCHITECTURES)


def matches_family(src: TensorSource, fam: str) -> bool:
    """True when some key of ``src`` has the characteristic name of family ``fam``."""
    return SUPPORTED_ARCHITECTURES[fam].matches(src)


def _by_model_type(value) -> Family | None:
    v = str(value or "").lower()
    return next((f for f in SUPPORTED_ARCHITECTURES.values() if v in f.model_types), None)


def detect_architecture(src: TensorSource) -> str:
    """The family whose rules apply to ``src`` (``generic`` when none is recognised)."""
    cfg = src.config
    named = _by_model_type(cfg.get("general.architecture" if src.format == "gguf" else "model_type"))
    if named is not None and named.matches(src):
        return named.name
    if src.format == "gguf":
        return "generic"
    for fam in SUPPORTED_ARCHITECTURES.values():
        if fam.patterns and fam.matches(src):
            return fam.name
    return "sequential" if generic.is_sequential(src) else "generic"


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
    fam = SUPPORTED_ARCHITECTURES.get(arch)
    if fam is None:
        raise InputError(f"architecture={arch!r} is unknown; use one of {', '.join(FAMILIES)}")
    if fam.patterns and not fam.matches(src):
        raise InputError(
            f"{src.path}: architecture={arch!r} does not match the tensor names (no key like "
            f"{fam.example}); omit architecture= to detect the family, or name the right one"
        )
    # a file's tensors do not change while it is open; a live module's do (training)
    b = GraphBuilder(name, arch, src.path, fold_norms, memo_slices=src.format != "module")
    fam(b, src, src.config, heads=heads, kv_heads=kv_heads)
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
