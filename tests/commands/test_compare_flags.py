"""``flagalign compare`` / ``trajectory`` report flag distances per matrix (eqs. (63), (66), (67)).

Acceptance (issue "Flags that carry information"): compare on two checkpoints of a small trained
MLP reports flag distances per layer. References: splits by eq. (63) written out on numpy's SVD,
the chordal distance from piece projectors (¼ Σ‖Pᵢ − Qᵢ‖²_F)^½.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flagalign
from flagalign.cli import main
from flagalign.geometry.pair_flags import parse_flag_type

torch = pytest.importorskip("torch")
nn = torch.nn

LAYERS = ["0.weight", "2.weight", "4.weight"]


def _ref_flag(w, side, k):
    """(basis, dims) by eq. (63) on numpy's SVD at float32's δ of eq. (62), splits d < k."""
    w = np.asarray(w, dtype=np.float64)
    u, s, vt = np.linalg.svd(w)
    delta = np.finfo(np.float32).eps * np.linalg.norm(w) + max(w.shape) * np.finfo(float).eps * s[0]
    dims = tuple(d for d in range(1, k) if s[d - 1] - s[d] >= 10 * delta)
    return (u if side == "out" else vt.T), dims


def _ref_distance(fa, fb, dims):
    (ua, _), (ub, _) = fa, fb
    n = ua.shape[0]

    def proj(b):
        edges = (0,) + dims
        ps = [b[:, i:j] @ b[:, i:j].T for i, j in zip(edges, edges[1:])]
        return ps + [np.eye(n) - b[:, : dims[-1]] @ b[:, : dims[-1]].T]

    return math.sqrt(0.25 * sum(np.linalg.norm(p - q) ** 2 for p, q in zip(proj(ua), proj(ub))))


@pytest.fixture(scope="module")
def mlp_checkpoints(tmp_path_factory):
    """A ReLU MLP trained with Adam for 60 steps; state dicts saved at steps 20 and 60."""
    folder = tmp_path_factory.mktemp("mlp")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 40), nn.ReLU(),
                      nn.Linear(40, 16))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(128, 12, generator=g), torch.randint(0, 16, (128,), generator=g)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for step in range(1, 61):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        if step in (20, 60):
            torch.save({k: v.detach().clone() for k, v in m.state_dict().items()},
                       folder / f"step_{step}.pt")
    return folder


def test_compare_trained_mlp_reports_flag_distances_per_layer(mlp_checkpoints, tmp_path):
    a, b = mlp_checkpoints / "step_20.pt", mlp_checkpoints / "step_60.pt"
    out = tmp_path / "cmp"
    env = dict(os.environ, PYTHONPATH=str(Path(flagalign.__file__).parents[1]),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "flagalign", "compare", str(a), str(b),
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "out_flag_distance" in proc.stdout and "in_flag_distance" in proc.stdout
    t = pd.read_csv(out / "compare.csv").set_index("matrix")
    assert list(t.index) == LAYERS
    sa, sb = torch.load(a), torch.load(b)
    for name in LAYERS:
        row = t.loc[name]
        k = int(row.k)
        for side in ("out", "in"):
            fa = _ref_flag(sa[name].numpy(), side, k)
            fb = _ref_flag(sb[name].numpy(), side, k)
            common = tuple(sorted(set(fa[1]) & set(fb[1])))
            assert parse_flag_type(row[f"{side}_flag_type"]) == common
            ref = _ref_distance(fa, fb, common)
            # training moved every layer, by less than two random flags differ
            assert 0.01 < row[f"{side}_flag_distance"] < row[f"{side}_flag_baseline"]
            assert row[f"{side}_flag_distance"] == pytest.approx(ref, rel=1e-6)


def test_compare_same_checkpoint_gives_zero_and_planted_rotation(mlp_checkpoints, tmp_path, capsys):
    sd = torch.load(mlp_checkpoints / "step_60.pt")
    rng = np.random.default_rng(3)
    R = np.linalg.qr(rng.standard_normal((48, 48)))[0]
    rot = {k: v.clone() for k, v in sd.items()}
    rot["0.weight"] = torch.from_numpy((R @ sd["0.weight"].double().numpy()).astype(np.float32))
    torch.save(rot, tmp_path / "rot.pt")
    out = tmp_path / "same"
    b = str(mlp_checkpoints / "step_60.pt")
    assert main(["compare", b, b, "--out", str(out)]) == 0
    t = pd.read_csv(out / "compare.csv")
    assert (t[["out_flag_distance", "in_flag_distance"]] < 1e-12).all().all()
    assert main(["compare", str(mlp_checkpoints / "step_60.pt"), str(tmp_path / "rot.pt"),
                 "--out", str(tmp_path / "rot")]) == 0
    t = pd.read_csv(tmp_path / "rot" / "compare.csv").set_index("matrix")
    # the rotation moves only layer 0's output flag; its input flag and the other layers stay
    assert t.loc["0.weight", "out_flag_distance"] > 0.5
    assert t.loc["0.weight", "in_flag_distance"] < 1e-4
    rest = t.loc[["2.weight", "4.weight"], ["out_flag_distance", "in_flag_distance"]]
    assert (rest < 1e-12).all().all()


def test_trajectory_writes_flag_distances_to_previous_and_mean(mlp_checkpoints, tmp_path, capsys):
    sd = torch.load(mlp_checkpoints / "step_60.pt")
    folder = tmp_path / "ckpts"
    folder.mkdir()
    torch.save(torch.load(mlp_checkpoints / "step_20.pt"), folder / "step_20.pt")
    torch.save(sd, folder / "step_60.pt")
    torch.save(sd, folder / "step_80.pt")  # unchanged: distance 0 to the previous checkpoint
    out = tmp_path / "traj"
    assert main(["trajectory", str(folder), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "flag distances" in text and "flags.csv" in text
    f = pd.read_csv(out / "flags.csv")
    assert set(f.matrix) == set(LAYERS) and set(f.side) == {"out", "in"}
    assert len(f) == 3 * len(LAYERS) * 2
    first = f[f.step == 20]
    assert first.distance_prev.isna().all()
    assert (f[f.step == 80].distance_prev.abs() < 1e-12).all()
    assert (f[f.step == 60].distance_prev > 0.01).all()
    # the mean of (A, B, B) lies between A and B: closer to B, never farther than A is from B
    for (name, side), g in f.groupby(["matrix", "side"]):
        g = g.set_index("step")
        d_ab = g.loc[60, "distance_prev"]
        assert g.loc[60, "distance_mean"] < g.loc[20, "distance_mean"] <= d_ab + 1e-9
        assert g.loc[60, "distance_mean"] == pytest.approx(g.loc[80, "distance_mean"], abs=1e-12)
