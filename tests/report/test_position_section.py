"""The report's relative-position section (report/position_section.py; docs/theory.md eq. (65))."""

import numpy as np
import pytest

from flagalign.diagnostics import analyze
from flagalign.geometry import Flag, piece_overlaps
from flagalign.geometry.pair_flags import parse_flag_type
from flagalign.models.network import Network, Pair
from flagalign.report import SECTIONS
from flagalign.report.position_section import extreme_pairs, position_figure, position_matrix
from _planted import random_orthogonal

N = 40  # k = 10


def _net():
    """``same``: reader input flag = writer output flag, with a 3-cluster and a 2-cluster;
    ``rand``: an unrelated random pair."""
    rng = np.random.default_rng(0)
    s = np.array([8.0, 8.0, 8.0, 5.0, 5.0, 3.0, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6])
    u = random_orthogonal(N, rng)[:, : s.size]
    arr = {
        "same.w": u @ np.diag(s) @ random_orthogonal(20, rng)[:, : s.size].T,
        "same.r": (u @ np.diag(s) @ random_orthogonal(24, rng)[:, : s.size].T).T,
        "rand.w": rng.standard_normal((N, 20)),
        "rand.r": rng.standard_normal((24, N)),
    }
    pairs = [Pair("same.w", "same.r", "mlp", N), Pair("rand.w", "rand.r", "mlp", N)]
    return Network.from_arrays(arr, pairs, name="planted")


@pytest.fixture(scope="module")
def an():
    return analyze(_net(), progress=False, heads=False)


def test_identical_flags_put_all_weight_on_the_diagonal(an):
    same, rand = "same.w -> same.r", "rand.w -> rand.r"
    assert extreme_pairs(an) == [same, rand]
    m, sl, sr = position_matrix(an, same)
    row = an.pairs.set_index("pair").loc[same]
    assert parse_flag_type(row.flag_type_left) == (3, 5, 6, 7, 8, 9)
    np.testing.assert_array_equal(sl, [3, 2, 1, 1, 1, 1, N - 9])
    np.testing.assert_allclose(m, np.diag(sl.astype(float)), atol=1e-9)
    # the random pair: rows / columns sum to the piece sizes, and the matrix equals
    # piece_overlaps of the flags rebuilt from an independent SVD
    m2, sl2, sr2 = position_matrix(an, rand)
    np.testing.assert_allclose(m2.sum(axis=1), sl2, atol=1e-5)
    np.testing.assert_allclose(m2.sum(axis=0), sr2, atol=1e-5)
    net = _net()
    u = np.linalg.svd(net.matrix("rand.w"))[0]
    v = np.linalg.svd(net.matrix("rand.r"))[2].T
    r = an.pairs.set_index("pair").loc[rand]
    ref = piece_overlaps(Flag(u, parse_flag_type(r.flag_type_left)),
                         Flag(v, parse_flag_type(r.flag_type_right)))
    np.testing.assert_allclose(m2, ref, atol=1e-5)  # the flag tables are kept as float32


def test_section_renders_with_identity_caption(an):
    sec = SECTIONS["position"]
    html = sec.render(an)
    assert 'alt="relative position of the flags"' in html
    assert "Identity" in html and "diagonal" in html and "random" in html
    assert html.count("<tr>") == 3  # the two pairs in the table
    assert position_figure(an) is not None
    assert "Relative position of the flags" in an.to_html()


def test_section_left_out_without_flag_tables_and_says_why_for_trivial_flags():
    an = analyze(_net(), progress=False, heads=False, keep_flags=False)
    assert SECTIONS["position"].render(an) is None
    # isotropic top-k (all singular values equal): every flag is (), nothing to draw
    rng = np.random.default_rng(1)
    q = random_orthogonal(N, rng)
    net = Network.from_arrays({"w": q[:, :20] * 2.0, "r": q[:, :24].T.copy()},
                              [Pair("w", "r", "mlp", N)])
    an = analyze(net, progress=False, heads=False)
    assert an.pairs.flag_type_left.iloc[0] == "()"
    html = SECTIONS["position"].render(an)
    assert "no relative position to draw" in html and "<img" not in html
