"""The pass criteria of ``flagalign reproduce hierarchy`` (committed to docs/results.md before
the first full run): :func:`verdict` evaluates each on the finals table."""

from __future__ import annotations

from .hierarchy_protocol import (LIN_NULL_MAX, RELU_NULL_MIN, RHO_MAX, TOL_FLAT, TOL_GRAD,
                                 TOL_NC1, TOL_RATE, TOL_SINE)

__all__ = ["verdict"]


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def verdict(finals, alphas) -> list:
    """The pass criteria of docs/results.md ("hierarchy"), one set per λ (worst case over
    seeds and hidden pairs)."""
    from .verdict import check

    out = []
    lo, hi = min(alphas), max(alphas)
    for lam in sorted(finals.lam.unique()):
        f = finals[finals.lam == lam]
        relu, lin = f[f.alpha == lo], f[f.alpha == hi]
        tag = f"λ={lam:g}"
        worst = f.loc[f.grad_ratio.idxmax()]
        out.append(check(f"{tag}: stationary point verified, max ρ_∇ over all runs",
                         f.grad_ratio.max(), "<=", TOL_GRAD,
                         f"worst α={worst.alpha:g} seed {int(worst.seed)}"))
        out.append(check(f"{tag}: L1 ReLU, max NC1 over seeds", relu.nc1.max(), "<=", TOL_NC1,
                         f"CDNV max {relu.cdnv.max():.3g}"))
        out.append(check(f"{tag}: L1 ReLU, rank M (min over seeds) = C−1", relu.rank_M.min(),
                         ">=", 9))
        out.append(check(f"{tag}: L2 ReLU, max sin θ on the top-r directions",
                         relu.level2_r_max_sine.max(), "<=", TOL_SINE,
                         f"r = {int(relu.r.min())}–{int(relu.r.max())} (C−1 = 9); "
                         f"k = C−1: max sin θ {relu.level2_max_sine.max():.3g}"))
        out.append(check(f"{tag}: L3 linear, max c̃/null over seeds and pairs",
                         lin.c_aug_over_null.max(), "<=", LIN_NULL_MAX,
                         f"max c̃ = {lin.c_aug.max():.2e}"))
        dev = (lin.rate_D_off / lin.predicted_rate - 1).abs().max()
        out.append(check(f"{tag}: linear off-diag D decays at r = −2log(1−ηλ): max |r̂/r − 1|",
                         dev, "<=", TOL_RATE, f"r = {float(lin.predicted_rate.iloc[0]):.4g}"))
        dev = (relu.rate_D_diag / relu.predicted_rate - 1).abs().max()
        out.append(check(f"{tag}: ReLU diag D decays at r: max |r̂/r − 1|", dev, "<=", TOL_RATE,
                         f"r = {float(relu.predicted_rate.iloc[0]):.4g}"))
        out.append(check(f"{tag}: ReLU obstruction, min c̃/null over seeds and pairs",
                         relu.c_aug_over_null.min(), ">=", RELU_NULL_MIN,
                         f"c̃ {relu.c_aug.min():.3g}–{relu.c_aug.max():.3g}"))
        out.append(check(f"{tag}: ReLU obstruction, min relative off-diag D",
                         relu.D_off_rel.min(), ">=", 0.01))
        flat = max((relu.rate_c_aug.abs() / relu.predicted_rate).max(),
                   (relu.rate_D_off_rel.abs() / relu.predicted_rate).max())
        out.append(check(f"{tag}: ReLU plateau, max |fitted rate| / r of c̃ and rel. off-diag D",
                         flat, "<=", TOL_FLAT))
        rhos = []
        for p in sorted(f.pair.unique()):
            fp = f[f.pair == p]
            rhos.append(_spearman(fp.alpha, fp.c_aug_over_null))
        out.append(check(f"{tag}: dose–response, max over pairs of Spearman ρ(α, c̃/null)",
                         max(rhos), "<=", RHO_MAX,
                         "per pair: " + ", ".join(f"{x:.3g}" for x in rhos)))
    return out
