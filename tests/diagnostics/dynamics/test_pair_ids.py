"""One vocabulary: a pair has the same id, and `imbalance` the same (relative) meaning, in the
tracker's history / JSONL, `trajectory.csv` and `pairs.csv` of the same model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import flagalign  # noqa: E402
from flagalign.cli import main  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.ReLU(), torch.nn.Linear(24, 16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 4))


def test_tracker_history_joins_pairs_csv(tmp_path):
    model = _model()
    log = tmp_path / "align.jsonl"
    tr = flagalign.AlignmentTracker(model, k=4, log=log)  # records step 0
    tr.close()
    an = flagalign.analyze(model, k=4, progress=False, heads=False)
    an.save(tmp_path / "out", formats=("csv",))
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    h = tr.history
    assert set(h.pair) == set(pairs.pair) == {"0.weight -> 2.weight", "2.weight -> 4.weight"}
    # the same name means the same number: imbalance is relative in both, imbalance_abs absolute
    wide = h.pivot_table(index="pair", columns="metric", values="value")
    joined = pairs.set_index("pair").merge(wide, left_index=True, right_index=True,
                                           suffixes=("", "_tracker"))
    for col in ("imbalance", "imbalance_diag", "imbalance_offdiag", "imbalance_abs", "overlap",
                "commutator"):
        np.testing.assert_allclose(joined[col], joined[f"{col}_tracker"], rtol=1e-9, err_msg=col)
    assert (joined["imbalance"] <= 1).all() and (joined["imbalance_abs"] > 1e-3).all()
    # JSONL log: the same ids
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    text = json.dumps(lines)
    assert "0.weight -> 2.weight" in text and '"0 -> 2"' not in text
    # the module form is still accepted where a pair is looked up
    assert tr.prediction("0 -> 2") == tr.prediction("0.weight -> 2.weight")


def test_trajectory_csv_joins_pairs_csv(tmp_path):
    from safetensors.torch import save_file

    model = _model()
    ck = tmp_path / "ckpts"
    ck.mkdir()
    for step in (0, 10, 20):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.99)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(ck / f"step_{step}.safetensors"))
    assert main(["trajectory", str(ck), "--out", str(tmp_path / "t"), "-k", "4", "--quiet"]) == 0
    assert main(["analyze", str(ck / "step_20.safetensors"), "--out", str(tmp_path / "a"),
                 "-k", "4", "-q"]) == 0
    traj = pd.read_csv(tmp_path / "t" / "trajectory.csv")
    pairs = pd.read_csv(tmp_path / "a" / "pairs.csv")
    assert set(traj.pair) == set(pairs.pair)
    last = traj[(traj.step == 20) & (traj.metric == "imbalance")].set_index("pair").value
    np.testing.assert_allclose(last.loc[pairs.pair], pairs.imbalance, rtol=1e-6)


def test_pairs_csv_has_block_layer_head_columns():
    from flagalign.models.labels import block_of, head_of

    assert block_of("encoder.layer.3.attention.self.value.weight[kv0]") == "encoder.layer.3"
    assert block_of("layer2.1.conv1.weight") == "layer2.1"
    assert block_of("fc.weight") == ""
    assert head_of("a.v.weight[kv1]", "a.o.weight[head5]") == 5
    assert head_of("a.v.weight[kv1]", "a.o.weight") == 1
    assert head_of("a.weight", "b.weight") is None
    cols = flagalign.diagnostics.PAIR_COLUMNS
    assert {"block", "layer", "head"} <= set(cols)
