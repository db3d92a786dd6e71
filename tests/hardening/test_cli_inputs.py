"""CLI arguments and checkpoint folders: every bad input is exit 2 with one line, never exit 1.

Issue 13: ``heads --seed -1`` was exit 1; ``analyze --seed -1`` exited 0 with every pair
failing; ``trajectory`` reported "k must be in [1,3] for a 3x7 matrix" instead of naming the
checkpoint that is corrupt or has other shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from _hardening import assert_one_line, cli
from safetensors.numpy import save_file

from flagalign.models.synthetic import llama_tensors, write_folder


def _mlp(path, widths=(6, 10, 3), seed=0):
    rng = np.random.default_rng(seed)
    t = {f"layers.{i}.weight": rng.standard_normal((b, a)) for i, (a, b) in enumerate(zip(widths, widths[1:]))}
    save_file(t, str(path))
    return str(path)


def test_analyze_negative_seed(tmp_path, capsys):
    path = _mlp(tmp_path / "m.safetensors")
    rc, err = cli(["analyze", path, "--out", tmp_path / "o", "-q", "--seed", "-1"], capsys)
    assert_one_line(rc, err, "seed")


def test_heads_negative_seed(tmp_path, capsys):
    t, cfg = llama_tensors(np.random.default_rng(0), layers=1)
    folder = write_folder(tmp_path / "m", t, cfg)
    rc, err = cli(["heads", folder, "--out", tmp_path / "o", "--quiet", "--seed", "-1"], capsys)
    assert_one_line(rc, err, "seed")


def test_trajectory_names_checkpoint_with_other_shapes(tmp_path, capsys):
    d = tmp_path / "ck"
    d.mkdir()
    _mlp(d / "step_1.safetensors", (6, 10, 3))
    _mlp(d / "step_2.safetensors", (6, 10, 3), seed=1)
    _mlp(d / "step_3.safetensors", (7, 10, 3), seed=2)
    rc, err = cli(["trajectory", d, "--out", tmp_path / "o", "--quiet"], capsys)
    assert_one_line(rc, err, "step_3.safetensors", "step_1.safetensors", "layers.0.weight")


def test_trajectory_names_corrupt_checkpoint(tmp_path, capsys):
    d = tmp_path / "ck"
    (d / "checkpoint-2").mkdir(parents=True)
    _mlp(d / "step_1.safetensors")
    (d / "checkpoint-2" / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all")
    rc, err = cli(["trajectory", d, "--out", tmp_path / "o", "--quiet"], capsys)
    assert_one_line(rc, err, "checkpoint " + str(d / "checkpoint-2"))
