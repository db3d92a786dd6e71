"""Notebook and embedding views of `Analysis`: `_repr_html_`, `__repr__`, `plot`, `to_html`."""

from __future__ import annotations

import re

import numpy as np
import pytest

import flagalign
from flagalign.diagnostics import _figures


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    r = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("m") / "m.npz"
    np.savez(path, **{"0.weight": r.standard_normal((32, 16)),
                      "2.weight": r.standard_normal((32, 32)),
                      "4.weight": r.standard_normal((8, 32))})
    return flagalign.analyze(str(path), progress=False)


def test_repr_html_is_a_fragment(an):
    h = an._repr_html_()
    low = h.lower()
    assert low.startswith("<div") and low.rstrip().endswith("</div>")
    for tag in ("<html", "<body", "<head", "<style", "<script", "<link"):
        assert tag not in low, tag
    assert "data:image/png;base64," in h  # the key figure
    assert "overlap_ratio" in h and str(an.summary["n_pairs"]) in h


def test_repr_is_short(an):
    r = repr(an)
    assert r.startswith("<Analysis") and "\n" not in r and len(r) < 200
    med = an.pairs["overlap_ratio"].median()
    assert f"{med:.2f}" in r


@pytest.mark.parametrize("which", ["overlap", "angles", "flags", "commutator"])
def test_plot_returns_figures(an, which):
    from matplotlib.figure import Figure

    assert isinstance(an.plot(which), Figure)


def test_plot_rejects_unknown(an):
    with pytest.raises(flagalign.InputError, match="overlap"):
        an.plot("nope")


def test_to_html_full_and_fragment(an):
    full, frag = an.to_html(), an.to_html(full=False)
    assert full.startswith("<!DOCTYPE html>") and "<body>" in full
    assert "<html" not in frag and "<body" not in frag and frag.startswith("<div")
    # the fragment's CSS is scoped: every rule starts with the fragment's class
    css = re.search(r"<style>(.*?)</style>", frag, re.S).group(1)
    rules = [r for r in css.split("}") if r.strip() and "{" in r]
    assert rules and all(r.strip().startswith(".flagalign-report") for r in rules)
    # same figures in both
    assert full.count("data:image/png") == frag.count("data:image/png") > 0


def test_one_registry_for_every_family():
    for family in ("analysis", "analysis.html", "heads", "heads.files", "rates"):
        assert callable(_figures.drawer(family))
    with pytest.raises(flagalign.FlagalignError):
        _figures.drawer("no-such-family")
