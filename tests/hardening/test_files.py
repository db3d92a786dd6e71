"""Only regular files are read, and nothing outside a model folder.

Issue 13: a FIFO named config.json blocked forever; a symlink loop and a directory named
x.safetensors were internal errors; a shard symlinked to a file outside the folder was read and
merged; two shards defining one tensor differently were merged silently.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _hardening import assert_one_line, cli, cli_child

from flagalign import load
from flagalign.errors import CorruptFileError, InputError
from flagalign.models.synthetic import mlp_tensors, write_safetensors


def _mlp(folder, seed=0):
    os.makedirs(folder, exist_ok=True)
    return write_safetensors(os.path.join(folder, "model.safetensors"), mlp_tensors(np.random.default_rng(seed)))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_config_does_not_block(tmp_path):
    folder = tmp_path / "m"
    _mlp(folder)
    os.mkfifo(folder / "config.json")
    rc, err = cli_child(["describe", folder], timeout=60)
    assert_one_line(rc, err, "config.json", "FIFO")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_model_file_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "w.safetensors")
    rc, err = cli_child(["describe", tmp_path / "w.safetensors"], timeout=60)
    assert rc == 2, err


def test_symlink_loop_in_folder(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    os.symlink("b.safetensors", folder / "a.safetensors")
    os.symlink("a.safetensors", folder / "b.safetensors")
    with pytest.raises(InputError, match="symlink loop"):
        load(folder)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "symlink loop")


def test_symlink_loop_as_source(tmp_path, capsys):
    os.symlink("x.safetensors", tmp_path / "x.safetensors")
    rc, err = cli(["describe", tmp_path / "x.safetensors"], capsys)
    assert_one_line(rc, err, "symlink loop")


def test_directory_named_like_a_shard(tmp_path, capsys):
    folder = tmp_path / "m"
    _mlp(folder)
    (folder / "x.safetensors").mkdir()
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "x.safetensors", "directory")


def test_shard_symlink_outside_folder_refused(tmp_path, capsys):
    outside = _mlp(tmp_path / "elsewhere")
    folder = tmp_path / "m"
    folder.mkdir()
    os.symlink(outside, folder / "model.safetensors")
    with pytest.raises(InputError, match="outside the model folder"):
        load(folder)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "outside the model folder")


def test_shard_symlink_inside_folder_and_hf_cache_layout_allowed(tmp_path):
    folder = tmp_path / "m"
    _mlp(folder / "real")
    os.symlink("real/model.safetensors", folder / "model.safetensors")
    assert load(folder).pairs
    # Hugging Face hub cache: snapshots/<rev>/f -> ../../blobs/<hash>
    repo = tmp_path / "models--x--y"
    (repo / "snapshots" / "abc").mkdir(parents=True)
    blob = _mlp(repo / "blobs")
    os.symlink(os.path.relpath(blob, repo / "snapshots" / "abc"), repo / "snapshots" / "abc" / "model.safetensors")
    assert load(repo / "snapshots" / "abc").pairs


def test_two_shards_disagree(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_safetensors(folder / "model-00001.safetensors", {"layers.0.weight": rng.standard_normal((4, 3))})
    write_safetensors(
        folder / "model-00002.safetensors",
        {"layers.0.weight": rng.standard_normal((4, 3)), "layers.1.weight": rng.standard_normal((2, 4))},
    )
    with pytest.raises(CorruptFileError, match="model-00001.safetensors.*model-00002.safetensors"):
        load(folder)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "layers.0.weight", "model-00001", "model-00002")


def test_two_shards_same_tensor_same_bytes_ok(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    w = np.random.default_rng(0).standard_normal((4, 3))
    write_safetensors(folder / "a.safetensors", {"layers.0.weight": w})
    write_safetensors(folder / "b.safetensors", {"layers.0.weight": w, "layers.1.weight": np.ones((2, 4))})
    net = load(folder)
    np.testing.assert_allclose(net.matrix("layers.0.weight"), w.astype(np.float32))


def test_torch_bin_symlink_outside_folder_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"layers.0.weight": torch.ones(3, 2)}, tmp_path / "x.bin")
    folder = tmp_path / "m"
    folder.mkdir()
    os.symlink(tmp_path / "x.bin", folder / "pytorch_model.bin")
    with pytest.raises(InputError, match="outside the model folder"):
        load(folder)


def test_config_symlink_outside_folder_refused(tmp_path, capsys):
    folder = tmp_path / "m"
    _mlp(folder)
    (tmp_path / "secret.json").write_text('{"model_type": "llama"}')
    os.symlink(tmp_path / "secret.json", folder / "config.json")
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "config.json", "outside the model folder")
