"""NC1 (eq. (31)) is a trace of a product of two PSD matrices, so it is never negative — also
when the accumulated Σ_W is PSD only up to rounding and a class-mean direction is nearly
degenerate (a linear net trained with cross-entropy gave NC1 = −46 before the fix)."""

import numpy as np

from flagalign.collapse.metrics import nc1


def test_rounding_negative_within_cov_on_a_tiny_class_direction_gives_nonnegative_nc1():
    rng = np.random.default_rng(0)
    C, d = 4, 12
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    M = np.zeros((C, d))
    M[:, :3] = rng.standard_normal((C, 3)) @ np.diag([1.0, 1.0, 1e-7])  # 3rd direction tiny
    M -= M.mean(axis=0)
    M = M @ Q.T
    # within-class covariance: large, and slightly negative (rounding level) along M's tiny direction
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    lam = np.full(d, 1e3)
    basis = np.linalg.qr(np.column_stack([vt[2], rng.standard_normal((d, d - 1))]))[0]
    lam[0] = -1e3 * 1e-15  # the PSD matrix as accumulated: -ε·‖Σ_W‖ along v_3
    sigma_w = basis @ np.diag(lam) @ basis.T
    naive = float(np.einsum("d,de,e->", vt[2], sigma_w, vt[2]) / s[2] ** 2)
    assert naive < 0  # what the einsum form returned
    value = nc1(sigma_w, M)
    assert value >= 0.0 and np.isfinite(value)



def test_clipped_form_equals_the_direct_trace_on_well_conditioned_means():
    rng = np.random.default_rng(1)
    C, d = 5, 10
    M = rng.standard_normal((C, d))
    M -= M.mean(axis=0)
    A = rng.standard_normal((d, 2 * d))
    sigma_w = A @ A.T / (2 * d)
    direct = float(np.trace(sigma_w @ np.linalg.pinv(M.T @ M / C)) / C)  # eq. (31) with Σ_B⁺
    assert abs(nc1(sigma_w, M) - direct) <= 1e-10 * direct


def test_collapse_submodules_import_under_the_short_name():
    import flagalign.collapse.metrics as short
    import flagalign.diagnostics.collapse.metrics as full

    assert short is full
