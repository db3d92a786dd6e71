"""`flagalign reproduce ridge --quick` and the shared training helpers (docs/theory.md §2)."""

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from flagalign.cli import main  # noqa: E402
from flagalign.experiments import training  # noqa: E402


def test_load_digits_and_split():
    d = training.load_digits_data()
    assert tuple(d.x.shape) == (1797, 64) and d.x.dtype == torch.float32
    assert d.y.dtype == torch.int64 and set(d.y.tolist()) == set(range(10))
    # standardized: zero mean, unit variance on non-constant pixels
    x = d.x.double().numpy()
    assert np.abs(x.mean(0)).max() < 1e-5
    sd = x.std(0)
    assert np.allclose(sd[sd > 0], 1.0, atol=1e-5)
    s = training.load_digits_data(test_fraction=0.2, seed=3)
    assert s.x.shape[0] + s.x_test.shape[0] == 1797
    assert abs(s.x_test.shape[0] - 360) <= 10
    assert np.bincount(s.y_test.numpy(), minlength=10).min() >= 30  # stratified


def test_make_mlp_layout_and_init_scales():
    m = training.make_mlp(64, 32, 4, 10, activation="tanh", seed=1)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear", "Tanh", "Linear"]
    lin = training.make_mlp(64, 32, 4, 10, activation="linear", seed=1)
    assert [type(x).__name__ for x in lin][1] == "Identity"
    # same seed, same init whatever the activation; scales multiply weights and biases
    scaled = training.make_mlp(64, 32, 4, 10, activation="relu", seed=1, init_scales=[1, 2, 1, 3])
    assert torch.equal(m[0].weight, lin[0].weight)
    assert torch.allclose(scaled[2].weight, 2 * m[2].weight)
    assert torch.allclose(scaled[6].bias, 3 * m[6].bias)
    with pytest.raises(ValueError):
        training.make_mlp(4, 4, 1, 2)
    with pytest.raises(ValueError):
        training.make_mlp(4, 4, 3, 2, activation="gelu")
    assert [n for n, _ in training.linear_layers(m)] == ["0", "2", "4", "6"]
    assert tuple(training.features(m, torch.zeros(5, 64)).shape) == (5, 32)


def test_train_decreases_loss_and_optimizer_groups():
    d = training.load_digits_data()
    with training.torch_threads(1):
        m = training.make_mlp(64, 16, 3, 10, activation="relu")
        r = training.train(m, d.x[:300], d.y[:300], steps=60, lr=0.1, weight_decay=1e-3,
                           batch_size=64, seed=0)  # fmt: skip
        assert r.losses.shape == (60,) and r.losses[-5:].mean() < 0.7 * r.losses[0]
        assert type(r.optimizer).__name__ == "SGD"
        mse = training.train(m, d.x[:300], d.y[:300], steps=5, lr=0.05, loss="mse")
        assert np.isfinite(mse.losses).all()
    opt = training.make_optimizer(m, "sgd", lr=0.1, weight_decay=1e-2, decay_biases=False)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-2, 0.0]
    assert all(p.ndim == 1 for p in opt.param_groups[1]["params"])
    assert type(training.make_optimizer(m, "adamw", lr=1e-3)).__name__ == "AdamW"
    with pytest.raises(ValueError):
        training.make_optimizer(m, "lbfgs", lr=1.0)


def test_reproduce_ridge_quick(tmp_path, capsys):
    """The quick experiment passes every criterion and writes its table, CSVs and figure."""
    t0 = time.perf_counter()
    rc = main(["reproduce", "ridge", "--quick", "--out", str(tmp_path), "--quiet"])
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "ridge: PASSED" in out and "FAIL" not in out.split("**Overall")[0]
    for name in ("ridge.md", "ridge_rates.csv", "ridge_history.csv", "ridge_imbalance.png"):
        assert (tmp_path / name).stat().st_size > 0
    import pandas as pd

    rates = pd.read_csv(tmp_path / "ridge_rates.csv")
    lin = rates[(rates.activation == "linear") & (rates.metric == "imbalance_abs")]
    assert np.allclose(lin.ratio, 1.0, atol=0.05)
    adam = rates[rates.optimizer == "adamw"]
    assert not adam.applicable.any() and adam.predicted.isna().all()
    assert elapsed < 180
    from _verdict_checks import check_verdict

    doc = check_verdict(tmp_path / "verdict.json", "ridge", passed=True)
    # one criterion per table check: 2 per linear row, 2 per ReLU row, 1 AdamW row per pair,
    # plus the linear-in-λ check per pair (2 λ × 2 pairs per activation in --quick)
    assert len(doc["criteria"]) == 2 * 4 + 2 * 4 + 2 + 2


def test_reproduce_unknown_experiment_is_a_usage_error(capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "unknown experiment" in capsys.readouterr().err
