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


# ---------------------------------------------------------------- the registry


def test_registry_one_record_per_family():
    from flagalign.models.architectures import FAMILIES, SUPPORTED_ARCHITECTURES

    assert FAMILIES == ("bert", "gpt2", "llama", "resnet", "mobilenetv2", "efficientnet", "sequential", "generic")
    for name, fam in SUPPORTED_ARCHITECTURES.items():
        assert fam.name == name and callable(fam.build)
        assert bool(fam.patterns) == bool(fam.example)  # a recognisable family can say what it expects
    assert SUPPORTED_ARCHITECTURES["llama"].model_types == ("llama", "mistral", "qwen2")


def test_adding_a_family_is_one_record(tmp_path, monkeypatch):
    import re

    from flagalign.models import architectures
    from flagalign.models.architectures.convlayers import add_linear
    from flagalign.models.architectures.registry import Family

    def build_toy(b, src, cfg, **_):  # toy.N.w chained in N order
        names = [add_linear(b, src, f"toy.{n}.w") for n in range(3)]
        for a, c in zip(names, names[1:]):
            b.pair(a, c, "sequential", note="toy rule")

    toy = Family("toy", build_toy, (re.compile(r"^toy\.\d+\.w$"),), "toy.0.w", ("toy",))
    monkeypatch.setattr(architectures, "SUPPORTED_ARCHITECTURES", {"toy": toy, **architectures.SUPPORTED_ARCHITECTURES})
    rng = np.random.default_rng(0)
    t = {"toy.0.w": rng.standard_normal((5, 3)), "toy.1.w": rng.standard_normal((4, 5)),
         "toy.2.w": rng.standard_normal((2, 4))}  # fmt: skip
    net = load(write_safetensors(tmp_path / "toy.safetensors", t))
    assert net.architecture == "toy"
    assert [(p.left, p.right, p.depth) for p in net.pairs] == [("toy.0.w", "toy.1.w", 0), ("toy.1.w", "toy.2.w", 1)]
    with pytest.raises(InputError, match="toy.0.w"):
        load(write_safetensors(tmp_path / "mlp.safetensors", mlp_tensors(rng, sizes=(4, 8, 3))), architecture="toy")
