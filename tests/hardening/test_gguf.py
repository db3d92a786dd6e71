"""GGUF metadata and header values that used to divide by zero, overflow or recurse.

Issue 13: head_count 0, general.alignment 0 / non-integer / "abc", a string length 2⁶³+5,
dims [2³², 2³²], deeply nested arrays → CorruptFileError (exit 2), never exit 1.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from _hardening import (
    ARRAY, F32, STRING, U32, U64, assert_one_line, cli, gkv, gstr, gval, llama_gguf_kvs,
    llama_gguf_tensors, raw_gguf,
)  # fmt: skip

from flagalign import load
from flagalign.errors import CorruptFileError


def _rng():
    return np.random.default_rng(0)


def _refused(path, capsys, *needles):
    with pytest.raises(CorruptFileError):
        load(path)
    rc, err = cli(["describe", path], capsys)
    assert_one_line(rc, err, str(path), *needles)


def test_valid_raw_gguf_loads(tmp_path):
    net = load(raw_gguf(tmp_path / "ok.gguf", llama_gguf_kvs(), llama_gguf_tensors(_rng())))
    assert net.architecture == "llama" and net.attention[0].heads == 2


@pytest.mark.parametrize(
    "key,vtype,value",
    [
        ("llama.attention.head_count", U32, 0),
        ("llama.attention.head_count", U32, 10**9),
        ("llama.attention.head_count", STRING, "two"),
        ("llama.attention.head_count_kv", U32, 0),
        ("llama.attention.head_count_kv", U32, 3),
        ("llama.embedding_length", U32, 0),
    ],
)
def test_bad_head_metadata(tmp_path, capsys, key, vtype, value):
    kvs = llama_gguf_kvs(**{key: (vtype, value)})
    path = raw_gguf(tmp_path / "m.gguf", kvs, llama_gguf_tensors(_rng()))
    _refused(path, capsys, key.split(".", 1)[1])


@pytest.mark.parametrize("vtype,value", [(U32, 0), (STRING, "abc"), (F32, 4.5)])
def test_bad_alignment(tmp_path, capsys, vtype, value):
    kvs = llama_gguf_kvs() + [gkv("general.alignment", vtype, gval(vtype, value))]
    path = raw_gguf(tmp_path / "a.gguf", kvs, llama_gguf_tensors(_rng()))
    _refused(path, capsys, "general.alignment")


def test_huge_string_length_in_string_array(tmp_path, capsys):
    arr = struct.pack("<IQ", STRING, 1) + struct.pack("<Q", 2**63 + 5) + b"abc"
    kvs = llama_gguf_kvs() + [gkv("tokenizer.ggml.tokens", ARRAY, arr)]
    _refused(raw_gguf(tmp_path / "s.gguf", kvs, llama_gguf_tensors(_rng())), capsys)


def test_huge_string_length_key(tmp_path, capsys):
    kvs = [gstr(b"k", length=2**63 + 5)]
    _refused(raw_gguf(tmp_path / "k.gguf", kvs, []), capsys)


def test_dims_product_overflow(tmp_path, capsys):
    """[2³², 2³²] F32: numpy's int64 product wraps to 0, so the size check passed."""
    path = raw_gguf(tmp_path / "d.gguf", [], [("w", [2**32, 2**32], None)])
    _refused(path, capsys)


def test_deeply_nested_arrays(tmp_path, capsys):
    depth = 5000
    value = struct.pack("<IQ", ARRAY, 1) * depth + struct.pack("<IQ", U64, 0)
    kvs = [gkv("x.nested", ARRAY, value)]
    _refused(raw_gguf(tmp_path / "n.gguf", kvs, [("w", [2, 2], np.ones((2, 2)))]), capsys)
