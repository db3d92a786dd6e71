"""The tracker's fit table: still the rate_table DataFrame, plus history, plot() and a notebook
view whose figure shows the fitted and the predicted slopes."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from flagalign import AlignmentTracker  # noqa: E402
from flagalign.diagnostics.dynamics import RateTable, rate_table  # noqa: E402


@pytest.fixture(scope="module")
def tracker():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0.05)
    t = AlignmentTracker(net, every=5, optimizer=opt)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        t.step()
    return t


def test_fit_rates_is_the_rate_table_with_its_history(tracker):
    t = tracker.fit_rates()
    assert isinstance(t, RateTable) and isinstance(t, pd.DataFrame)
    preds = {p.name: tracker.prediction(p.name) for p in tracker.pairs}
    acts = {p.name: p.activation for p in tracker.pairs}
    plain = rate_table(tracker.history, preds, acts, eps=tracker._eps())
    pd.testing.assert_frame_equal(pd.DataFrame(t), plain)
    pd.testing.assert_frame_equal(t.history, tracker.history)
    sub = t[t.metric == "imbalance_abs"]  # DataFrame operations keep the type and the history
    assert isinstance(sub, RateTable) and sub.history is t.history


def _slopes(fig):
    """-d log(y)/dx of every two-point line (the fitted / predicted slope segments)."""
    out = []
    for line in fig.axes[0].get_lines():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if len(x) == 2:
            out.append((line.get_linestyle(), -np.log(y[1] / y[0]) / (x[1] - x[0])))
    return out


def test_plot_shows_fitted_and_predicted_slopes(tracker):
    from matplotlib.figure import Figure

    t = tracker.fit_rates()
    fig = t.plot()
    assert isinstance(fig, Figure)
    # across the ReLU the law is about diag D; the linear pair's about D (eq. (23))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "0.weight -> 1.weight (imbalance_abs)" in labels and "1.weight -> 3.weight (imbalance_diag_abs)" in labels
    slopes = _slopes(fig)
    want_fit = t[((t.pair == "0.weight -> 1.weight") & (t.metric == "imbalance_abs"))
                 | ((t.pair == "1.weight -> 3.weight") & (t.metric == "imbalance_diag_abs"))].rate.to_numpy()
    got_fit = [s for ls, s in slopes if ls == "-"]
    got_pred = [s for ls, s in slopes if ls == ":"]
    np.testing.assert_allclose(got_fit, want_fit, rtol=1e-9)
    np.testing.assert_allclose(got_pred, [tracker.predicted_rate()] * 2, rtol=1e-9)
    # and the law holds on this run: fitted slope within 5% of predicted
    np.testing.assert_allclose(got_fit, got_pred, rtol=0.05)
    assert isinstance(t.plot("commutator"), Figure)
    assert isinstance(RateTable.of(pd.DataFrame(t)).plot(), Figure)  # no history: rates only


def test_repr_html_is_a_fragment_with_the_figure(tracker):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    t = tracker.fit_rates()
    html = t._repr_html_()
    assert plt.get_fignums() == before
    low = html.lower()
    assert all(tag not in low for tag in ("<html", "<body", "<style", "<script"))
    # 0 -> 1 (linear): D, diag D, offdiag D; 1 -> 3 (ReLU): diag D only (eq. (23))
    assert t.applicable.sum() == 4 and "2 pairs, 10 fits; law applicable to 4" in html
    (png,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
