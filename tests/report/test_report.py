"""The HTML report: self-contained (no network), every figure present, sections pluggable."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from flagalign.diagnostics import analyze
from flagalign.models.network import Network, Pair

threadpoolctl = pytest.importorskip("threadpoolctl")


def _net(nan: bool = False) -> Network:
    rng = np.random.default_rng(0)
    arr, pairs = {}, []
    for i in range(3):
        arr[f"blocks.{i}.up"] = rng.standard_normal((48, 16))
        arr[f"blocks.{i}.down"] = rng.standard_normal((16, 48))
    if nan:
        arr["blocks.1.down"][0, 0] = np.nan
    names = list(arr)
    for a, b in zip(names, names[1:]):
        pairs.append(Pair(a, b, "mlp" if a.endswith("up") else "residual", arr[a].shape[0]))
    return Network.from_arrays(arr, pairs, name="toy<&>", architecture="custom")


@pytest.fixture(scope="module")
def html():
    with threadpoolctl.threadpool_limits(1):
        an = analyze(_net(nan=True), progress=False, heads=False)
        return an, an.to_html()


def test_report_is_self_contained(html):
    _, page = html
    assert page.startswith("<!DOCTYPE html>")
    # the one script is the inline table sorter (issue: sortable tables, no remote resource)
    assert page.lower().count("<script") == 1 and "<script>" in page.lower()
    assert "<link" not in page.lower()
    # every resource is inline: no http(s)/file/relative src or url()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "url(" not in page
    assert "http://" not in page and "https://" not in page


def test_report_has_every_figure_and_header(html):
    an, page = html
    for alt in ("overlap vs depth", "principal angles", "flag tables", "commutator and imbalance"):
        assert f'alt="{alt}"' in page, alt
    for key in ("model", "architecture", "parameters analysed", "method", "tolerance",
                "schema version", "run time"):
        assert f"<dt>{key}" in page, key
    assert "toy&lt;&amp;&gt;" in page and "toy<&>" not in page  # names are escaped
    assert an.summary["schema_version"] in page
    # the not-ok pairs are listed with their reason
    assert "Pairs not measured" in page and "non-finite values in blocks.1.down" in page


def test_png_figures_decode(html):
    import base64
    import io

    from PIL import Image

    _, page = html
    for uri in re.findall(r'src="data:image/png;base64,([^"]*)"', page):
        im = Image.open(io.BytesIO(base64.b64decode(uri)))
        assert im.size[0] > 200 and im.size[1] > 100


def test_custom_and_broken_sections():
    """A registered section renders in its order (or is left out when it returns None); a
    section that raises is reported in place without losing the rest of the report."""
    from flagalign.report import SECTIONS, Section, register_section

    def extra(a):
        return "<p>EXTRA-SECTION</p>" if a.extras.get("demo") else None

    def absent(a):
        return None

    def broken(a):
        raise RuntimeError("boom")

    register_section(Section("zz_demo", "Demo", extra, order=45))
    register_section(Section("zz_absent", "Absent-Section", absent, order=46))
    register_section(Section("zz_broken", "Broken", broken, order=99))
    try:
        with threadpoolctl.threadpool_limits(1):
            an = analyze(_net(), progress=False, heads=False)
        an.extras["demo"] = True
        page = an.to_html()
        assert page.index("Flag tables") < page.index("EXTRA-SECTION") < page.index(
            "Commutator and imbalance</h2>"
        )
        assert "Absent-Section" not in page
        assert "section failed: RuntimeError: boom" in page and "Overlap vs depth" in page
    finally:
        for key in ("zz_demo", "zz_absent", "zz_broken"):
            SECTIONS.pop(key, None)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(html, tmp_path):
    """Render offline with headless Chromium; the screenshot must not be blank."""
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "screenshot_report", Path(__file__).parents[2] / "bench" / "screenshot_report.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, page = html
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    png = mod.screenshot(tmp_path / "report.html", tmp_path / "shot.png", 1200, 1600)
    im = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert im.std() > 10  # text and figures, not an empty page


def test_report_with_no_measurable_pair():
    """Every pair failing still gives a report (no figures, the failures listed)."""
    arr = {"a": np.full((8, 4), np.nan), "b": np.ones((3, 8))}
    an = analyze(Network.from_arrays(arr), progress=False, heads=False)
    page = an.to_html()
    assert "<img" not in page and "non-finite values in a" in page
    assert an.summary["n_ok"] == 0 and an.summary["by_depth"] == []
