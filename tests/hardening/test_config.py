"""config.json (and heads=/kv_heads=) checked against the tensor shapes before any use.

Issue 13: 10⁹ heads next to a 32-wide model built 10⁹ head slices (hang, GBs); "four", 4.5,
heads 3 with kv 2 and kv > heads were internal errors (exit 1). Each must be exit 2 naming the
field and config.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from _hardening import assert_one_line, cli, cli_child

from flagalign import load
from flagalign.errors import InputError
from flagalign.models.synthetic import gpt2_tensors, llama_tensors, write_folder


def _llama(tmp_path, **cfg_over):
    t, cfg = llama_tensors(np.random.default_rng(0), layers=1, d=32, heads=4, kv_heads=2)
    cfg.update(cfg_over)
    return write_folder(tmp_path / "m", t, cfg)


BAD_LLAMA = [
    ({"num_attention_heads": "four"}, "num_attention_heads"),
    ({"num_attention_heads": 4.5}, "num_attention_heads"),
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"num_attention_heads": -4}, "num_attention_heads"),
    ({"num_attention_heads": True}, "num_attention_heads"),
    ({"num_attention_heads": 5}, "num_attention_heads"),  # does not divide the width 32
    ({"num_attention_heads": 3, "num_key_value_heads": 2}, "num_attention_heads"),
    ({"num_key_value_heads": 8}, "num_key_value_heads"),  # kv > heads
    ({"num_key_value_heads": 3}, "num_key_value_heads"),  # does not divide heads
    ({"num_key_value_heads": "two"}, "num_key_value_heads"),
    ({"num_key_value_heads": 4}, "num_key_value_heads"),  # divides, but K has 2 heads' rows
    ({"head_dim": 5}, "head_dim"),
]


@pytest.mark.parametrize("over,field", BAD_LLAMA, ids=[str(d) for d, _ in BAD_LLAMA])
def test_bad_llama_config_exits_2_naming_field(tmp_path, capsys, over, field):
    folder = _llama(tmp_path, **over)
    with pytest.raises(InputError, match=field):
        load(folder)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, field, "config.json")


def test_billion_heads_refused_fast(tmp_path):
    """Used to build 10⁹ head slices (never finished); now refused before any slice."""
    folder = _llama(tmp_path, num_attention_heads=10**9)
    rc, err = cli_child(["describe", folder], timeout=60)
    assert rc == 2, (rc, err)
    assert "num_attention_heads" in err and "config.json" in err


def test_billion_kv_heads_refused(tmp_path):
    folder = _llama(tmp_path, num_key_value_heads=10**9)
    rc, err = cli_child(["describe", folder], timeout=60)
    assert_one_line(rc, err, "num_key_value_heads")


def test_gpt2_billion_heads(tmp_path):
    t, cfg = gpt2_tensors(np.random.default_rng(0), layers=1, d=16, heads=4)
    folder = write_folder(tmp_path / "g", t, dict(cfg, n_head=10**9))
    rc, err = cli_child(["describe", folder], timeout=60)
    assert_one_line(rc, err, "n_head", "config.json")


@pytest.mark.parametrize("bad", ["four", 4.5, 0, 5])
def test_gpt2_n_head(tmp_path, capsys, bad):
    t, cfg = gpt2_tensors(np.random.default_rng(0), layers=1, d=16, heads=4)
    cfg["n_head"] = bad
    folder = write_folder(tmp_path / "g", t, cfg)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "n_head", "config.json")


@pytest.mark.parametrize("kw", [{"heads": 64}, {"heads": 2.5}, {"heads": 4, "kv_heads": 3}])
def test_explicit_head_arguments_checked(tmp_path, kw):
    t, cfg = llama_tensors(np.random.default_rng(0), layers=1, d=32, heads=4, kv_heads=2)
    del cfg["num_attention_heads"], cfg["num_key_value_heads"]
    folder = write_folder(tmp_path / "m", t, cfg)
    with pytest.raises(InputError, match="heads"):
        load(folder, **kw)


def test_good_config_still_loads(tmp_path):
    net = load(_llama(tmp_path))
    att = net.attention[0]
    assert (att.heads, att.kv_heads, att.head_dim) == (4, 2, 8)


def test_config_not_json_object_or_deeply_nested(tmp_path, capsys):
    folder = _llama(tmp_path)
    with open(f"{folder}/config.json", "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    rc, err = cli(["describe", folder], capsys)
    assert_one_line(rc, err, "config.json")
