"""Architecture metadata checked against the tensor shapes before any rule uses it.

``config.json`` (HF), GGUF key/values and the ``heads=``/``kv_heads=`` arguments decide how many
head slices the transformer rules build; a hostile or broken value (10⁹ heads next to a 32-wide
model, ``"four"``, ``4.5``, kv heads that do not divide the heads) must be refused up front with
the field and the file named, never turn into 10⁹ slices or an internal error
(docs/security.md, "Resource bounds"). Rules, for every family that slices heads:

* each head count is a positive integer (not a bool, float or string) and at most the width;
* the query width is heads × head_dim, the key/value width kv_heads × head_dim;
* kv_heads divides heads (grouped-query attention).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import CorruptFileError, InputError
from .sources.base import TensorSource

__all__ = ["check_config", "check_count"]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_count(value, field: str, where: str, *, upper: int | None = None, error=InputError) -> int | None:
    """``value`` as a positive int ≤ ``upper`` (None stays None), else ``error`` naming ``field``."""
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise error(f"{where}: {field} = {value!r} is not a positive integer; fix the metadata")
    if upper is not None and value > upper:
        raise error(f"{where}: {field} = {value!r} exceeds the width {upper} of the model's matrices")
    return int(value)


def _config_file(src: TensorSource) -> str:
    if src.format == "gguf":
        return f"{src.path} (GGUF metadata)"
    if src.format == "module":
        return f"{src.path} config"
    folder = src.path if os.path.isdir(src.path) else os.path.dirname(src.path) or "."
    return os.path.join(folder, "config.json")


def _first(src: TensorSource, pattern: str) -> str | None:
    pat = re.compile(pattern)
    return next((k for k in sorted(src.entries) if pat.search(k)), None)


def _heads_split(where, q_rows, k_rows, heads, kv, head_dim, names) -> None:
    """q_rows = heads·head_dim, k_rows = kv·head_dim, kv | heads (``names``: field names)."""
    hf, kf, df = names
    if head_dim is None:
        if q_rows % heads:
            raise InputError(f"{where}: {hf} = {heads} does not divide the query width {q_rows}")
        head_dim = q_rows // heads
    elif heads * head_dim != q_rows:
        raise InputError(
            f"{where}: {hf} = {heads} × {df} = {head_dim} does not match the query width {q_rows}"
        )
    if kv is not None:
        if kv > heads:
            raise InputError(f"{where}: {kf} = {kv} exceeds {hf} = {heads}")
        if heads % kv:
            raise InputError(f"{where}: {kf} = {kv} does not divide {hf} = {heads}")
        if k_rows is not None and kv * head_dim != k_rows:
            raise InputError(
                f"{where}: {kf} = {kv} × head dim {head_dim} does not match the key width {k_rows}"
            )


def _arg_or(arg, argname, cfg, fields, where, upper):
    """The explicit argument (checked as ``argname=``) or the first config field that is set."""
    if arg is not None:
        return check_count(arg, argname, "load", upper=upper), argname
    for f in fields:
        if cfg.get(f) is not None:
            return check_count(cfg[f], f, where, upper=upper), f
    return None, fields[0]


def check_config(src: TensorSource, arch: str, heads=None, kv_heads=None) -> None:
    """Refuse metadata that does not fit ``src``'s tensors for family ``arch`` (see module doc).

    Raises
    ------
    InputError
        A config.json field or ``heads=``/``kv_heads=`` argument that is not a positive integer,
        exceeds the width or does not divide it.
    CorruptFileError
        The same for GGUF metadata (the file itself is inconsistent).
    """
    cfg, where = src.config, _config_file(src)
    if arch == "bert":
        q = _first(src, r"encoder\.layer\.\d+\.attention\.self\.query\.weight$")
        if q is None:
            return
        width = src.shape(q)[-1]
        h, hf = _arg_or(heads, "heads", cfg, ("num_attention_heads",), where, width)
        if h is not None:
            _heads_split(where, width, None, h, None, None, (hf, "", ""))
    elif arch == "gpt2":
        q = _first(src, r"(^|\.)h\.\d+\.attn\.c_attn\.weight$")
        if q is None:
            return
        width = src.shape(q)[0]
        h, hf = _arg_or(heads, "heads", cfg, ("n_head", "num_attention_heads"), where, width)
        if h is not None:
            _heads_split(where, width, None, h, None, None, (hf, "", ""))
    elif arch == "llama" and src.format == "gguf":
        _check_gguf_llama(src, cfg, where)
    elif arch == "llama":
        q = _first(src, r"(^|\.)layers\.\d+\.self_attn\.q_proj\.weight$")
        if q is None:
            return
        q_rows = src.shape(q)[0]
        kk = q.replace("q_proj", "k_proj")
        k_rows = src.shape(kk)[0] if kk in src else None
        h, hf = _arg_or(heads, "heads", cfg, ("num_attention_heads",), where, q_rows)
        kv, kf = _arg_or(kv_heads, "kv_heads", cfg, ("num_key_value_heads",), where, q_rows)
        hd = check_count(cfg.get("head_dim"), "head_dim", where, upper=q_rows)
        if h is not None:
            _heads_split(where, q_rows, k_rows, h, kv, hd, (hf, kf, "head_dim"))


def _check_gguf_llama(src: TensorSource, cfg: dict, where: str) -> None:
    arch = cfg.get("general.architecture", "llama")
    q = next((k for k in src.entries if re.match(r"^blk\.\d+\.attn_q\.weight$", k)), None)
    width = max((max(e.shape) for e in src.entries.values() if e.shape), default=1)

    def get(k):
        return check_count(cfg.get(f"{arch}.{k}"), f"{arch}.{k}", where, upper=width, error=CorruptFileError)

    d_model, heads = get("embedding_length"), get("attention.head_count")
    get("feed_forward_length")
    kv, hd = get("attention.head_count_kv"), get("attention.key_length")
    if q is None or heads is None or d_model is None:
        return
    q_rows = src.shape(q)[0]
    kk = q.replace("attn_q", "attn_k")
    k_rows = src.shape(kk)[0] if kk in src else None
    names = (f"{arch}.attention.head_count", f"{arch}.attention.head_count_kv", f"{arch}.attention.key_length")
    try:
        _heads_split(where, q_rows, k_rows, heads, kv, hd, names)
    except InputError as exc:
        raise CorruptFileError(str(exc)) from None
