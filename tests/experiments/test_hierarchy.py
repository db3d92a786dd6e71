"""``flagalign reproduce hierarchy --quick`` end to end, plus its building blocks."""

from __future__ import annotations

import numpy as np
import pytest
from _verdict_checks import check_one_run, check_verdict

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import time

    from flagalign.cli import main

    out = tmp_path_factory.mktemp("hierarchy")
    t0 = time.perf_counter()
    rc = main(["reproduce", "hierarchy", "--quick", "--out", str(out), "--quiet"])
    return rc, out, time.perf_counter() - t0


def test_quick_outputs_and_verdict(quick):
    import pandas as pd

    rc, out, seconds = quick
    assert seconds < 120, f"--quick took {seconds:.0f} s"
    for name in ("hierarchy_records.csv", "hierarchy_final.csv", "hierarchy.png", "hierarchy.md"):
        assert (out / name).stat().st_size > 0
    assert rc in (0, 3), rc  # 3: a criterion failed; 1 would be a crash
    doc = check_verdict(out / "verdict.json", "hierarchy", passed=(rc == 0))
    check_one_run(out, "hierarchy", ["hierarchy_records.csv", "hierarchy_final.csv",
                                     "hierarchy.png", "hierarchy.md", "verdict.json"])
    assert doc["quick"] is True and len(doc["criteria"]) == 11
    fin = pd.read_csv(out / "hierarchy_final.csv")
    assert sorted(fin.alpha.unique()) == [0.0, 1.0] and sorted(fin.pair.unique()) == [1, 2, 3]
    # c̃/null is the ratio of two saved columns
    assert np.allclose(fin.c_aug_over_null, fin.c_aug / fin.null)


def test_quick_run_obeys_the_ridge_law(quick):
    """Even the short run must show eq. (22)/(23): linear D and ReLU diag D decay at
    r = −2 log(1 − ηλ) within 5 %; and the ReLU net's c̃/null stays above the linear net's."""
    import pandas as pd

    _, out, _ = quick
    fin = pd.read_csv(out / "hierarchy_final.csv")
    lin, relu = fin[fin.alpha == 1.0], fin[fin.alpha == 0.0]
    assert np.all(np.abs(lin.rate_D_off / lin.predicted_rate - 1) < 0.05)
    assert np.all(np.abs(relu.rate_D_diag / relu.predicted_rate - 1) < 0.05)
    # the linear net's c̃ is already below the ReLU net's on every pair (same init, same seed)
    assert np.all(lin.sort_values("pair").c_aug_over_null.to_numpy()
                  < relu.sort_values("pair").c_aug_over_null.to_numpy())


def test_training_is_deterministic():
    from flagalign.experiments.hierarchy import load_data, train_one

    X, y = load_data(120)
    a = train_one(X, y, alpha=0.0, lam=2e-3, lr=1.0, steps=15, records=3, seed=3)
    b = train_one(X, y, alpha=0.0, lam=2e-3, lr=1.0, steps=15, records=3, seed=3)
    assert a[0] == b[0] and a[1] == b[1]


def test_zca_whitening_gives_identity_covariance_on_support():
    from flagalign.experiments.hierarchy import load_data

    X, _ = load_data(600)
    C = X.T @ X / X.shape[0]
    ev = np.linalg.eigvalsh(C)
    nz = ev[ev > 1e-8]
    assert np.allclose(X.mean(0), 0, atol=1e-10) and np.allclose(nz, 1.0, atol=1e-8)


def test_top_r_counts_kept_class_directions():
    from flagalign.experiments.hierarchy import top_r

    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    V, _ = np.linalg.qr(rng.standard_normal((64, 10)))
    s = np.array([5, 4, 3, 2, 1.5, 1, 0.8, 1e-4, 1e-6, 0.0])  # two pruned directions
    assert top_r(U @ np.diag(s) @ V.T) == 7
    assert top_r(np.zeros((10, 64))) == 0


def test_cli_rejects_seeds_for_experiments_without_them(capsys):
    from flagalign.cli import main

    assert main(["reproduce", "collapse", "--seeds", "2", "--quick"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["reproduce", "hierarchy", "--model", "minilm", "--quick"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["reproduce", "hierarchy", "--seeds", "0", "--quick"]) == 2


def test_results_do_not_depend_on_jobs():
    from flagalign.experiments.hierarchy import run_grid

    kw = dict(alphas=(0.0, 1.0), lambdas=(2e-3,), seeds=1, efolds=0.02, records=3, lr=1.0,
              n_train=100)
    f1 = run_grid(jobs=1, **kw)[1]
    f2 = run_grid(jobs=2, **kw)[1]
    assert f1.drop(columns="seconds").equals(f2.drop(columns="seconds"))


def test_cross_entropy_loss_matches_an_independent_computation():
    """``loss="ce"`` (secondary table): the recorded loss at step 0 is the mean softmax
    cross-entropy of the same initial network, recomputed in numpy (scipy logsumexp)."""
    import torch
    from scipy.special import logsumexp

    from flagalign.experiments.hierarchy import CONFIG, load_data, train_one

    X, y = load_data(120)
    rows, _ = train_one(X, y, alpha=0.25, lam=2e-3, lr=0.5, steps=3, records=2, seed=4,
                        loss="ce")  # fmt: skip
    torch.manual_seed(4)
    w = CONFIG["widths"]
    lins = [torch.nn.Linear(w[i], w[i + 1]).double() for i in range(len(w) - 1)]
    h = X
    for i, lin in enumerate(lins):
        h = h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
        if i < len(lins) - 1:
            h = np.where(h > 0, h, 0.25 * h)
    ce = float(np.mean(logsumexp(h, axis=1) - h[np.arange(y.size), y]))
    r0 = [r for r in rows if r["step"] == 0][0]
    assert abs(r0["loss"] - ce) < 1e-12
    from flagalign.experiments.hierarchy import run_grid

    frame, fin = run_grid(alphas=(0.0,), lambdas=(2e-3,), seeds=1, efolds=0.004, records=2,
                          lr=1.0, n_train=100, loss="ce")  # fmt: skip
    assert (frame.objective == "ce").all() and (fin.objective == "ce").all()
    assert np.isfinite(fin["loss"]).all()  # the loss value, not the label
    mse = train_one(X, y, alpha=0.25, lam=2e-3, lr=0.5, steps=3, records=2, seed=4)[0]
    assert mse[0]["loss"] != r0["loss"] and mse[-1]["c_aug"] != rows[-1]["c_aug"]
    with pytest.raises(ValueError):
        train_one(X, y, alpha=0.0, lam=2e-3, lr=0.5, steps=1, records=1, seed=0, loss="hinge")


def test_cli_loss_only_for_hierarchy(capsys):
    from flagalign.cli import main

    assert main(["reproduce", "collapse", "--loss", "ce", "--quick"]) == 2
    assert "--loss" in capsys.readouterr().err
    assert main(["reproduce", "hierarchy", "--loss", "hinge", "--quick"]) == 2
    assert "--loss" in capsys.readouterr().err
