"""Shared helpers of the hardening tests: run the CLI in-process or in a child with a timeout,
and write raw (possibly malformed) safetensors and GGUF files byte by byte."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def cli(args, capsys) -> tuple[int, str]:
    """``flagalign ARGS`` in-process: (exit status, stderr)."""
    from flagalign.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def cli_child(args, timeout: float = 60.0, cwd=None) -> tuple[int, str]:
    """``python -m flagalign ARGS`` in a child process, killed after ``timeout`` s (exit 124):
    for inputs that used to hang the process."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC), OPENBLAS_NUM_THREADS="1")
    try:
        p = subprocess.run(
            [sys.executable, "-m", "flagalign", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return p.returncode, p.stderr


def assert_one_line(rc: int, err: str, *needles: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, every needle in it."""
    assert rc == 2, (rc, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert n in err, (n, err)


def raw_safetensors(path, header: dict | bytes, data: bytes = b"") -> str:
    """A safetensors file with exactly this header (dict → JSON) and data bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


# ---------------------------------------------------------------- GGUF (v3, little-endian)
U32, I32, F32, STRING, ARRAY, U64 = 4, 5, 6, 8, 9, 10


def gstr(s: str | bytes, length: int | None = None) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def gval(vtype: int, v) -> bytes:
    """Encoded value of GGUF type ``vtype`` (scalars, strings; arrays via ``garray``)."""
    if vtype == STRING:
        return gstr(v)
    return struct.pack({U32: "<I", I32: "<i", F32: "<f", U64: "<Q"}[vtype], v)


def gkv(key: str, vtype: int, value_bytes: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + value_bytes


def raw_gguf(path, kvs: list[bytes], tensors: list[tuple[str, list[int], np.ndarray | None]],
             align: int = 32) -> str:  # fmt: skip
    """GGUF v3 with the given encoded key/values and F32 tensors (name, ne dims, data)."""
    infos, blobs, off = b"", b"", 0
    for name, dims, arr in tensors:
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, off)  # type 0 = F32
        data = b"" if arr is None else np.ascontiguousarray(arr, dtype="<f4").tobytes()
        pad = (-len(data)) % align
        blobs += data + b"\0" * pad
        off += len(data) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head + blobs)
    return str(path)


def llama_gguf_kvs(d=8, heads=2, kv=2, d_ff=12, **override) -> list[bytes]:
    """Key/values of a minimal llama GGUF; ``override`` maps a key suffix to (vtype, value)."""
    vals = {
        "general.architecture": (STRING, "llama"),
        "llama.embedding_length": (U32, d),
        "llama.feed_forward_length": (U32, d_ff),
        "llama.attention.head_count": (U32, heads),
        "llama.attention.head_count_kv": (U32, kv),
    }
    vals.update(override)
    return [gkv(k, t, gval(t, v)) for k, (t, v) in vals.items()]


def llama_gguf_tensors(rng, d=8, heads=2, kv=2, d_ff=12, layers=1):
    hd = d // heads
    t = []
    for n in range(layers):
        shapes = {
            "attn_q": (heads * hd, d), "attn_k": (kv * hd, d), "attn_v": (kv * hd, d),
            "attn_output": (d, heads * hd), "ffn_gate": (d_ff, d), "ffn_up": (d_ff, d),
            "ffn_down": (d, d_ff),
        }  # fmt: skip
        for name, (r, c) in shapes.items():
            t.append((f"blk.{n}.{name}.weight", [c, r], rng.standard_normal((r, c))))
    return t
