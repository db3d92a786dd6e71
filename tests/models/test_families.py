"""Architecture families: the registry and detection (docs/formats.md, "Family detection")."""

from __future__ import annotations

import numpy as np
import pytest

from flagalign import load
from flagalign.errors import InputError
from flagalign.models.synthetic import mlp_tensors, write_folder, write_safetensors


def test_config_model_type_not_matching_names_falls_back(tmp_path):
    rng = np.random.default_rng(0)
    t = mlp_tensors(rng, sizes=(4, 8, 3))
    net = load(write_folder(tmp_path / "m", t, {"model_type": "llama", "num_attention_heads": 2}))
    assert net.architecture == "sequential"
    assert [(p.left, p.right, p.kind) for p in net.pairs] == [
        ("layers.0.weight", "layers.1.weight", "sequential")
    ]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "resnet", "mobilenetv2", "efficientnet"])
def test_forced_architecture_not_matching_names_is_input_error(tmp_path, arch):
    rng = np.random.default_rng(0)
    path = write_safetensors(tmp_path / "mlp.safetensors", mlp_tensors(rng, sizes=(4, 8, 3)))
    with pytest.raises(InputError) as exc:
        load(path, architecture=arch, heads=2)
    msg = str(exc.value)
    assert path in msg and f"architecture={arch!r}" in msg and "\n" not in msg
