"""ONNX external data is read beside the model file only, from any working directory.

Issue 13: external data was resolved against the current directory (a ``location="x.bin"``
present only in the CWD was read and analysed) and a legitimate ``weights.bin`` beside the
model failed unless one ran from there. Absolute locations, ``..`` and symlinks leaving the
model's folder are refused (exit 2).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _hardening import assert_one_line, cli, cli_child

from flagalign import load
from flagalign.errors import FlagalignError, InputError

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(2)
W1 = RNG.standard_normal((4, 6)).astype(np.float32)
W2 = RNG.standard_normal((5, 6)).astype(np.float32)


def _model():
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2"], ["y"], transB=1),
    ]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(W1, "W1"), numpy_helper.from_array(W2, "W2")],
    )  # fmt: skip
    return helper.make_model(g)


def _external(folder) -> str:
    """m.onnx with both initializers in weights.bin beside it."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "m.onnx")
    onnx.save_model(_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)  # fmt: skip
    return path


def _relocate(path, location):
    m = onnx.load(path, load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(m, path)


def test_external_data_beside_model_from_any_cwd(tmp_path, monkeypatch):
    path = _external(tmp_path / "model")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    net = load(path)
    np.testing.assert_array_equal(net.matrix(net.pairs[0].left), W1.T.astype(np.float64))
    np.testing.assert_array_equal(net.matrix(net.pairs[0].right), W2.astype(np.float64))


def test_external_data_only_in_cwd_is_not_read(tmp_path):
    path = _external(tmp_path / "model")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    os.replace(tmp_path / "model" / "weights.bin", cwd / "weights.bin")
    rc, err = cli_child(["describe", path], cwd=cwd)
    assert rc == 2, err
    assert "weights.bin" in err


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_location_outside_folder_refused(tmp_path, capsys, where):
    path = _external(tmp_path / "model")
    os.replace(tmp_path / "model" / "weights.bin", tmp_path / "weights.bin")
    loc = str(tmp_path / "weights.bin") if where == "absolute" else "../weights.bin"
    _relocate(path, loc)
    with pytest.raises(InputError, match="outside the model's folder"):
        load(path)
    rc, err = cli(["describe", path], capsys)
    assert_one_line(rc, err, path, "outside")


def test_symlink_leaving_folder_refused(tmp_path, capsys):
    path = _external(tmp_path / "model")
    os.replace(tmp_path / "model" / "weights.bin", tmp_path / "secret.bin")
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "weights.bin")
    with pytest.raises(InputError, match="outside the model folder"):
        load(path)
    rc, err = cli(["describe", path], capsys)
    assert_one_line(rc, err, "outside")


def test_missing_external_file(tmp_path, capsys):
    path = _external(tmp_path / "model")
    os.remove(tmp_path / "model" / "weights.bin")
    with pytest.raises(FlagalignError):
        load(path)
    rc, err = cli(["describe", path], capsys)
    assert_one_line(rc, err, "weights.bin")
