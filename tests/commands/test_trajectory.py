"""`flagalign trajectory` and `flagalign compare` on real saved checkpoints."""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

from flagalign.cli import main
from flagalign.commands.trajectory import list_checkpoints
from flagalign.errors import InputError, SourceNotFoundError

torch = pytest.importorskip("torch")
nn = torch.nn


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_list_checkpoints_orders_by_step(tmp_path):
    for name in ("step_10.pt", "step_2.safetensors", "notes.txt", "final.pt", "epoch=1-step=30.ckpt"):
        _touch(tmp_path / name)
    (tmp_path / "checkpoint-500").mkdir()
    got = [(s, p.name) for s, p in list_checkpoints(tmp_path)]
    assert got == [(2, "step_2.safetensors"), (10, "step_10.pt"), (30, "epoch=1-step=30.ckpt"),
                   (500, "checkpoint-500")]  # fmt: skip
    _touch(tmp_path / "model_10.npz")
    with pytest.raises(InputError, match="both have step 10"):
        list_checkpoints(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no checkpoints"):
        list_checkpoints(empty)
    with pytest.raises(SourceNotFoundError):
        list_checkpoints(tmp_path / "missing")


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    """A linear MLP trained with SGD + L2 decay, saved every 40 steps in two formats."""
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 10), nn.Linear(10, 10), nn.Linear(10, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 6, generator=g), torch.randint(0, 3, (48,), generator=g)
    opt = torch.optim.SGD(m.parameters(), lr=0.2, weight_decay=0.05)
    for step in range(1, 321):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        if step % 40 == 0:
            sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
            if (step // 40) % 2:
                torch.save(sd, folder / f"step_{step}.pt")
            else:
                save_file({k: v.numpy() for k, v in sd.items()}, str(folder / f"step_{step}.safetensors"))
    return folder


def test_trajectory_recovers_the_predicted_rate(linear_run, tmp_path, capsys):
    out = tmp_path / "traj"
    rc = main(["trajectory", str(linear_run), "--out", str(out), "--lr", "0.2",
               "--weight-decay", "0.05", "--activation", "linear", "--quiet"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "8 checkpoints (steps 40..320)" in text
    hist = pd.read_csv(out / "trajectory.csv")
    assert sorted(hist.step.unique()) == list(range(40, 321, 40))
    rates = pd.read_csv(out / "rates.csv")
    law = rates[rates.metric.isin(["imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs"])]
    assert len(law) == 6 and law.applicable.all()
    assert np.allclose(law.predicted, -np.log(1 - 2 * 0.2 * 0.05))  # eq. (22), issue 12
    assert np.allclose(law.ratio, 1.0, atol=0.02), law[["pair", "metric", "ratio"]]
    assert (out / "trajectory.png").stat().st_size > 0


def test_trajectory_without_hyperparameters_and_bad_args(linear_run, tmp_path, capsys):
    rc = main(["trajectory", str(linear_run), "--out", str(tmp_path / "t"), "--quiet"])
    assert rc == 0
    rates = pd.read_csv(tmp_path / "t" / "rates.csv")
    assert rates.predicted.isna().all() and not rates.applicable.any()
    assert main(["trajectory", str(linear_run), "--lr", "0.1", "--quiet"]) == 2
    assert main(["trajectory", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--weight-decay" in err


def test_trajectory_underdamped_momentum_has_no_prediction(linear_run, tmp_path, capsys):
    """eq. (25): 2ηλ > (1 − √β)² gives complex roots — no rate to fit, so NaN, not −½ log β."""
    import argparse
    import math

    from flagalign.commands.trajectory import _prediction
    from flagalign.diagnostics.dynamics.rates import damping, law_rate

    assert damping(0.2, 0.05, 0.9) == "underdamped"  # 0.02 > (1 − √0.9)² = 0.0026
    rc = main(["trajectory", str(linear_run), "--out", str(tmp_path / "u"), "--lr", "0.2",
               "--weight-decay", "0.05", "--momentum", "0.9", "--activation", "linear",
               "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().out
    rates = pd.read_csv(tmp_path / "u" / "rates.csv")
    law = rates[rates.metric.isin(["imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs"])]
    assert len(law) == 6 and law.predicted.isna().all() and not law.applicable.any()
    ns = argparse.Namespace(lr=0.2, weight_decay=0.05, momentum=0.9)
    pred = _prediction(ns)
    assert pred.rate is None and "underdamped" in pred.reason and pred.momentum == 0.9
    # overdamped momentum (2ηλ = 4e-4 ≤ (1 − √0.5)² ≈ 0.086) keeps its eq. (25) prediction
    over = _prediction(argparse.Namespace(lr=0.2, weight_decay=0.001, momentum=0.5))
    assert damping(0.2, 0.001, 0.5) == "overdamped"
    assert over.rate == law_rate(0.2, 0.001, 0.5) and math.isfinite(over.rate)
    # the boundary itself is overdamped (double real root): a prediction, −log √β
    beta = 0.81
    lam = (1 - math.sqrt(beta)) ** 2 / (2 * 0.1)
    edge = _prediction(argparse.Namespace(lr=0.1, weight_decay=lam * (1 - 1e-12), momentum=beta))
    assert edge.rate is not None and abs(edge.rate + 0.5 * math.log(beta)) < 1e-4


def _state(seed=0, widths=(6, 10, 10, 3)):
    rng = np.random.default_rng(seed)
    sd = {}
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        sd[f"{2 * i}.weight"] = rng.standard_normal((b, a)).astype(np.float32)
        sd[f"{2 * i}.bias"] = rng.standard_normal(b).astype(np.float32)
    return sd


def test_compare_planted_rotation(tmp_path, capsys):
    from safetensors.numpy import save_file

    a = _state()
    b = dict(a)
    rng = np.random.default_rng(5)
    R = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    b["0.weight"] = (R @ a["0.weight"].astype(np.float64)).astype(np.float32)  # rotates 0's output flag only
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                 "--k", "3", "--out", str(out)]) == 0  # fmt: skip
    t = pd.read_csv(out / "compare.csv").set_index("matrix")
    assert set(t.index) == {"0.weight", "2.weight", "4.weight"}
    U = np.linalg.svd(a["0.weight"].astype(np.float64))[0][:, :3]
    expected = np.degrees(sla.subspace_angles(U, R @ U).max())
    assert t.loc["0.weight", "out_max_angle_deg"] == pytest.approx(expected, abs=1e-2)
    assert t.loc["0.weight", "in_max_angle_deg"] < 1e-2  # right singular vectors unchanged
    assert t.loc["2.weight", "out_max_angle_deg"] < 1e-2 and t.loc["2.weight", "rel_change"] == 0
    assert t.loc["0.weight", "rel_change"] > 0.1


def test_compare_different_architectures_is_a_usage_error(tmp_path, capsys):
    from safetensors.numpy import save_file

    save_file(_state(widths=(6, 10, 3)), str(tmp_path / "a.safetensors"))
    save_file(_state(widths=(7, 9, 4)), str(tmp_path / "b.safetensors"))
    assert main(["compare", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "same architecture" in err and "Traceback" not in err
