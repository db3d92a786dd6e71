"""``flagalign.load``: any model source → one :class:`Network` (docs/formats.md).

Dispatch: ``nn.Module`` → :mod:`.module`; alias → packaged file; folder → HF model folder
(config.json + safetensors shards, or ``pytorch_model.bin``); file by extension
(``.safetensors``, ``.gguf``, ``.pt/.pth/.bin/.ckpt``, ``.npz``, ``.onnx``); otherwise the first
bytes decide (safetensors header, GGUF magic, zip) and anything else is refused.
"""

from __future__ import annotations

import glob
import json
import os

from ..errors import CorruptFileError, InputError, SourceNotFoundError, UnsupportedFormatError
from .aliases import ALIASES, alias_path, is_alias
from .architectures import build_network
from .network import Network
from .config_check import check_config
from .sources.base import TensorSource
from .sources.files import regular_file, require_inside

__all__ = ["load", "open_source"]

_TORCH_EXT = (".pt", ".pth", ".bin", ".ckpt")
#: config.json larger than this is refused (real ones are a few KB).
MAX_CONFIG_BYTES = 1 << 24


def _read_config(folder: str) -> dict:
    p = os.path.join(folder, "config.json")
    if not os.path.lexists(p):
        return {}
    st = regular_file(p, "config.json")  # a FIFO or device would block open() forever
    require_inside(folder, p, "config.json")
    if st.st_size > MAX_CONFIG_BYTES:
        raise CorruptFileError(f"{p}: config.json is {st.st_size} bytes (> {MAX_CONFIG_BYTES}); not a model config")
    try:
        with open(p, "rb") as f:
            cfg = json.loads(f.read(MAX_CONFIG_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        raise CorruptFileError(f"{p}: config.json is not valid JSON; fix or remove it") from None
    if not isinstance(cfg, dict):
        raise CorruptFileError(f"{p}: config.json is not a JSON object; fix or remove it")
    return cfg


def _open_folder(folder: str) -> TensorSource:
    from .sources.safetensors_file import open_safetensors_files

    cfg = _read_config(folder)
    shards = sorted(glob.glob(os.path.join(glob.escape(folder), "*.safetensors")))
    for s in shards:
        regular_file(s, "safetensors shard")
        require_inside(folder, s, "safetensors shard")
    if shards:
        return open_safetensors_files(shards, folder, cfg)
    for name in ("pytorch_model.bin", "model.pt", "model.pth"):
        p = os.path.join(folder, name)
        if os.path.lexists(p):
            regular_file(p)
            require_inside(folder, p, "weights file")
            src = _open_file(p)
            src.config.update(cfg)
            src.path = folder
            return src
    raise UnsupportedFormatError(
        f"{folder}: folder has no *.safetensors or pytorch_model.bin; point at a model file or a HF model folder"
    )


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"GGUF":
        return ".gguf"
    if head[:2] == b"PK":
        return ".pt"
    if len(head) >= 9 and head[8:9] == b"{":
        return ".safetensors"
    return ""


def _open_file(path: str) -> TensorSource:
    ext = os.path.splitext(path)[1].lower()
    if regular_file(path).st_size == 0:
        raise CorruptFileError(f"{path}: empty file; re-download or re-save the model")
    if ext not in (".safetensors", ".gguf", ".npz", ".onnx") + _TORCH_EXT:
        ext = _sniff(path)
    if ext == ".safetensors":
        from .sources.safetensors_file import open_safetensors

        cfg = _read_config(os.path.dirname(path) or ".")
        return open_safetensors(path, cfg)
    if ext == ".gguf":
        from .sources.gguf_file import open_gguf

        return open_gguf(path)
    if ext in _TORCH_EXT:
        from .sources.torch_file import open_torch_file

        src = open_torch_file(path)
        src.config.update(_read_config(os.path.dirname(path) or "."))
        return src
    if ext == ".npz":
        from .sources.npz_file import open_npz

        return open_npz(path)
    if ext == ".onnx":
        from .sources.onnx_file import open_onnx

        return open_onnx(path)
    raise UnsupportedFormatError(
        f"{path}: not a model file flagalign reads (.safetensors, .gguf, .pt/.pth/.bin, .npz, .onnx, HF folder)"
    )


def open_source(source) -> TensorSource:
    """The :class:`TensorSource` behind a path or alias (no architecture rules applied)."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise InputError(
            f"load: expected a path, an alias ({', '.join(ALIASES)}) or a torch.nn.Module, got {type(source).__name__}"
        )
    if is_alias(source) and not os.path.exists(source):
        source = alias_path(source)
    if os.path.islink(source) and not os.path.exists(source):
        regular_file(source)  # a symlink loop or dangling link: say which
    if not os.path.exists(source):
        raise SourceNotFoundError(f"{source}: no such file or folder{_did_you_mean(source)} "
                                  f"(aliases: {', '.join(ALIASES)})")
    return _open_folder(source) if os.path.isdir(source) else _open_file(source)


def _did_you_mean(source: str) -> str:
    """`` (did you mean 'minilm'?)`` when ``source`` looks like a misspelt alias (no folder
    separator) close to one, else ``""``."""
    import difflib

    if os.sep in source or "/" in source:
        return ""
    close = difflib.get_close_matches(source.lower(), list(ALIASES), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load(
    source,
    *,
    fold_norms: bool = True,
    name: str | None = None,
    architecture: str | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> Network:
    """Load any model source into a lazily read :class:`Network` with true adjacency.

    Parameters
    ----------
    source : str, os.PathLike or torch.nn.Module
        A model file (``.safetensors``, ``.gguf``, ``.pt/.pth/.bin``, ``.npz``, ``.onnx``), a
        folder (HF model folder or safetensors shards), an alias (``flagalign.models.aliases``),
        or an ``nn.Module``.
    fold_norms : bool
        Fold LayerNorm/RMSNorm gains into the following readers and BatchNorm into the preceding
        convs (docs/formats.md); False keeps raw weights. Recorded as ``Network.fold_norms``.
    name : str, optional
        Display name (default: alias or file name).
    architecture : str, optional
        Force a family (``bert``, ``gpt2``, ``llama``, ``resnet``, ``mobilenetv2``,
        ``efficientnet``, ``sequential``, ``generic``) instead of detecting it.
    heads, kv_heads : int, optional
        Attention head counts when no config.json/metadata says them.

    Returns
    -------
    Network
    """
    if (
        type(source).__module__.startswith("torch")
        or hasattr(source, "state_dict")
        and hasattr(source, "named_modules")
    ):
        from .module import load_module

        return load_module(
            source,
            fold_norms=fold_norms,
            name=name,
            architecture=architecture,
            heads=heads,
            kv_heads=kv_heads,
        )
    label = (
        source if isinstance(source, str) else os.fspath(source) if isinstance(source, os.PathLike) else ""
    )
    src = open_source(source)
    if architecture is None or isinstance(architecture, str):
        from .architectures import detect_architecture

        check_config(src, architecture or detect_architecture(src), heads, kv_heads)
    if not name:
        name = (
            label.lower()
            if is_alias(label) and not os.path.exists(label)
            else os.path.basename(os.path.normpath(src.path))
        )
    return build_network(
        src, name=name, fold_norms=fold_norms, architecture=architecture, heads=heads, kv_heads=kv_heads
    )
