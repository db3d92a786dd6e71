"""Random baselines of eq. (38) against Monte Carlo (issue 12, error 6)."""

import numpy as np
import pytest

from flagalign.diagnostics.collapse import (
    cdnv_baseline,
    etf_distance_baseline,
    metrics,
    nc1_baseline,
)


def _mc(C, d, n, reps, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), n)
    out = np.array([[getattr(metrics(rng.standard_normal((C * n, d)), y, num_classes=C), f)
                     for f in ("nc1", "cdnv", "nc2_etf")] for _ in range(reps)])
    return out.mean(0), out.std(0, ddof=1) / np.sqrt(reps)


def test_nc1_baseline_matches_monte_carlo():
    C, d, n = 5, 60, 3
    mean, se = _mc(C, d, n, 1500, 1)
    assert nc1_baseline(C, d, n) == pytest.approx(8 / 55, rel=1e-15)  # (C−1)(n−1)/(d−C)
    assert abs(mean[0] - nc1_baseline(C, d, n)) < 4 * se[0]  # MC 0.145 ± 0.001
    assert abs(mean[0] - (C - 1) * n / (d - C)) > 30 * se[0]  # the former formula, 0.218
    assert abs(mean[1] - cdnv_baseline(d, n)) < 4 * se[1]
    # nc2_etf: MC estimator against an independent MC; the first-order formula is off
    etf, etf_se = etf_distance_baseline(C, d, samples=1500, seed=7)
    assert abs(mean[2] - etf) < 4 * np.hypot(se[2], etf_se)
    assert abs(etf - np.sqrt((C - 2) * (C + 1) / ((C - 1) * d))) > 10 * etf_se  # 0.274 vs 0.256


@pytest.mark.parametrize("C,d,n", [(3, 12, 5), (8, 20, 2)])
def test_nc1_baseline_other_shapes(C, d, n):
    mean, se = _mc(C, d, n, 800, C)
    assert abs(mean[0] - nc1_baseline(C, d, n)) < 4 * se[0]


def test_report_exposes_baselines_and_rank():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 3)
    rep = metrics(rng.standard_normal((15, 60)), y, num_classes=5)
    assert rep.nc1_baseline == pytest.approx(8 / 55)
    assert rep.cdnv_baseline == pytest.approx(60 * 2 / (2 * 58))
    assert rep.nc1_rank == 4
    assert "nc1_baseline" in rep.to_dict()
    assert np.isnan(nc1_baseline(5, 5, 3))
