"""NC1 with Σ_B⁺ is blind to discarded class directions; Level 1 checks rank M = C − 1
(docs/theory.md, eqs. (31), (38); issue 12, error 7)."""

import numpy as np
import pytest

from flagalign.diagnostics.collapse import TOL_NC1, metrics


def _lda_digits(k):
    from sklearn.datasets import load_digits
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = load_digits(return_X_y=True)
    X = X - X.mean(0)
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    keep = s > 1e-8 * s[0]
    Xw = u[:, keep] * np.sqrt(len(X))  # whitened (total covariance = I on its support)
    return LinearDiscriminantAnalysis(n_components=k).fit(Xw, y).transform(Xw), y


def test_top4_lda_features_are_not_level1():
    H, y = _lda_digits(4)
    rep = metrics(H, y, num_classes=10)
    assert rep.nc1 < TOL_NC1  # 0.089: NC1 alone would call this variability collapse
    assert rep.nc1 == pytest.approx(0.089, abs=0.005)
    assert rep.nc1_rank == 4 < rep.num_classes - 1
    assert not rep.level1 and rep.level == 0
    # CDNV sees the discarded directions: classes overlap in 4 dims
    assert rep.cdnv > 0.1


def test_full_lda_features_keep_rank():
    H, y = _lda_digits(9)
    rep = metrics(H, y, num_classes=10)
    assert rep.nc1_rank == 9
    assert rep.nc1 > TOL_NC1 and not rep.level1  # the honest NC1 of 9 LDA features
