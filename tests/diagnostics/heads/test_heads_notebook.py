"""Notebook views of HeadOverlap and Composition: short repr, plot() -> Figure, _repr_html_
(an embeddable fragment with the figure inline), no pyplot state, no backend switch."""

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flagalign
from flagalign.diagnostics.heads import composition, head_overlap
from flagalign.models.network import AttentionLayer, Network

SRC = Path(flagalign.__file__).resolve().parent


def _net(seed=0, L=3, d=24, H=4, dh=4):
    rng = np.random.default_rng(seed)
    arrays, atts = {}, []
    for i in range(L):
        for w, shape in (("q", (H * dh, d)), ("k", (H * dh, d)), ("v", (H * dh, d)),
                         ("o", (d, H * dh))):
            arrays[f"{w}{i}"] = rng.standard_normal(shape)
        atts.append(AttentionLayer(i, H, H, dh, d, f"q{i}", f"k{i}", f"v{i}", f"o{i}"))
    return Network.from_arrays(arrays, pairs=[], attention=atts)


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def _check_fragment(html: str):
    low = html.lower()
    for tag in ("<html", "<body", "<head", "<style", "<script", "<link"):
        assert tag not in low, tag  # embeddable: no page structure, no global CSS
    assert low.startswith("<div") and low.endswith("</div>")
    pngs = _pngs(html)
    assert len(pngs) == 1 and pngs[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_head_overlap_views():
    from matplotlib.figure import Figure

    res = head_overlap(_net(), "v", control="random-init")
    r = repr(res)
    assert "\n" not in r and len(r) < 200 and "HeadOverlap" in r and "random-init" in r
    html = res._repr_html_()
    _check_fragment(html)
    # the summary table carries every layer's ratio as the per-layer table has it
    for ratio in res.layers["ratio"]:
        assert f"{ratio:.3g}" in html
    fig = res.plot()
    assert isinstance(fig, Figure)
    # the redundancy figure plots the per-layer ratios (trained and control)
    ys = [line.get_ydata() for ax in fig.axes for line in ax.get_lines()]
    assert any(np.allclose(y, res.layers["ratio"]) for y in ys if len(y) == len(res.layers))
    heat = res.plot("heatmaps")
    assert isinstance(heat, Figure)
    assert [im.get_array().shape for ax in heat.axes for im in ax.get_images()] == [(4, 4)] * 3
    with pytest.raises(flagalign.InputError, match="kind"):
        res.plot("nonsense")


def test_composition_views():
    from matplotlib.figure import Figure

    comp = composition(_net(), "v")
    r = repr(comp)
    assert "\n" not in r and len(r) < 200 and "Composition" in r and "layer_pairs=3" in r
    html = comp._repr_html_()
    _check_fragment(html)
    fig = comp.plot()
    assert isinstance(fig, Figure)
    (img,) = [im for ax in fig.axes for im in ax.get_images()]
    piv = comp.layers.pivot(index="dst_layer", columns="src_layer", values="ratio").to_numpy()
    np.testing.assert_allclose(np.ma.filled(img.get_array(), np.nan), piv)


def test_views_leave_no_pyplot_state():
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    net = _net()
    res, comp = head_overlap(net, "q"), composition(net, "q")
    res._repr_html_(), comp._repr_html_(), res.plot(), comp.plot()
    assert plt.get_fignums() == before


def test_views_work_without_pyplot_and_keep_the_backend():
    code = (
        "import sys, numpy as np, matplotlib;"
        "backend = matplotlib.get_backend();"
        "from flagalign.diagnostics.heads import head_overlap, composition;"
        "from flagalign.models.network import AttentionLayer, Network;"
        "rng = np.random.default_rng(0);"
        "arrays = {f'{w}{i}': rng.standard_normal((8, 12) if w != 'o' else (12, 8))"
        " for i in range(2) for w in 'qkvo'};"
        "atts = [AttentionLayer(i, 2, 2, 4, 12, f'q{i}', f'k{i}', f'v{i}', f'o{i}') for i in range(2)];"
        "net = Network.from_arrays(arrays, pairs=[], attention=atts);"
        "h = head_overlap(net, 'v')._repr_html_() + composition(net, 'v')._repr_html_();"
        "print('data:image/png' in h, 'matplotlib.pyplot' in sys.modules,"
        " matplotlib.get_backend() == backend)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False", "True"], out.stdout + out.stderr


def test_no_matplotlib_use_behind_the_notebook_views():
    # the code a notebook view runs: diagnostics and the figure modules they draw with
    files = [*(SRC / "diagnostics").rglob("*.py"), SRC / "report" / "heads_figures.py",
             SRC / "report" / "dynamics_figures.py", SRC / "__init__.py"]
    offenders = [str(p.relative_to(SRC)) for p in files
                 if re.search(r"matplotlib\.use\(|\buse\(['\"]agg", p.read_text("utf-8"), re.I)]
    assert offenders == []


def test_notebook_helpers_do_not_import_report_or_matplotlib():
    from test_heads_layering import _imports

    for f in (SRC / "diagnostics" / "_figures.py",
              SRC / "diagnostics" / "dynamics" / "fit_table.py"):
        bad = {m for m in _imports(f) if m.startswith(("flagalign.report", "matplotlib"))}
        assert not bad, f"{f.name} imports {sorted(bad)}"
