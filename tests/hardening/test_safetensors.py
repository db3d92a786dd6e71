"""safetensors headers that overflow, recurse or alias bytes are refused as corrupt (exit 2).

Issue 13: [2^32, 2^32] with empty data passed the size check (numpy's product wraps to 0);
a deeply nested JSON header raised RecursionError; overlapping data offsets were accepted.
"""

from __future__ import annotations

import numpy as np
import pytest
from _hardening import assert_one_line, cli, raw_safetensors

from flagalign import load
from flagalign.errors import CorruptFileError


def _refused(path, capsys, *needles):
    with pytest.raises(CorruptFileError):
        load(path)
    rc, err = cli(["describe", path], capsys)
    assert_one_line(rc, err, str(path), *needles)


@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**16, 2**16, 2**16, 2**16], [2**63, 2]])
def test_shape_product_overflow(tmp_path, capsys, shape):
    hdr = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}
    _refused(raw_safetensors(tmp_path / "o.safetensors", hdr), capsys, "'w'")


def test_deeply_nested_header(tmp_path, capsys):
    raw = b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    _refused(raw_safetensors(tmp_path / "n.safetensors", raw), capsys)


def test_overlapping_offsets(tmp_path, capsys):
    data = np.arange(8, dtype="<f4").tobytes()
    hdr = {
        "a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]},
        "c.weight": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
    }
    _refused(raw_safetensors(tmp_path / "ov.safetensors", hdr, data), capsys, "overlap", "a.weight", "b.weight")


def test_identical_offsets_alias(tmp_path, capsys):
    data = np.arange(4, dtype="<f4").tobytes()
    hdr = {
        "a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    }
    _refused(raw_safetensors(tmp_path / "al.safetensors", hdr, data), capsys, "overlap")


def test_adjacent_and_empty_tensors_still_fine(tmp_path):
    data = np.arange(8, dtype="<f4").tobytes()
    hdr = {
        "a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "e.weight": {"dtype": "F32", "shape": [0, 2], "data_offsets": [16, 16]},
        "b.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 32]},
    }
    src_path = raw_safetensors(tmp_path / "ok.safetensors", hdr, data)
    from flagalign.models.loader import open_source

    src = open_source(src_path)
    np.testing.assert_array_equal(src.load("b.weight"), np.arange(4, 8).reshape(2, 2))
