"""`flagalign trajectory` on the analyze engine: the same numbers as the per-pair reference
(`pair_metrics`), checkpoints streamed to trajectory.jsonl and skipped on a rerun (a run cut
mid-write resumes), and `--jobs 2` identical to `--jobs 1`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flagalign import load
from flagalign.cli import main
from flagalign.diagnostics.dynamics.metrics import METRICS, pair_metrics


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """6 safetensors checkpoints of a 4-layer MLP with biases (one layer narrow: i + o ≪ n)."""
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("ckpts")
    rng = np.random.default_rng(0)
    widths = (5, 40, 3, 48, 7)
    base = {}
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        base[f"{i}.weight"] = rng.standard_normal((b, a))
        base[f"{i}.bias"] = rng.standard_normal(b)
    for s in range(1, 7):
        sd = {k: (v * 0.9**s + 0.01 * rng.standard_normal(v.shape)).astype(np.float32)
              for k, v in base.items()}
        save_file(sd, str(folder / f"step_{10 * s}.safetensors"))
    return folder


def _traj(run_dir, out, *extra):
    rc = main(["trajectory", str(run_dir), "--out", str(out), "--quiet", *map(str, extra)])
    assert rc == 0
    df = pd.read_csv(out / "trajectory.csv")
    return df.drop(columns=[c for c in ("run_id",) if c in df.columns])


def test_engine_matches_reference_and_jobs_are_identical(run_dir, tmp_path):
    one = _traj(run_dir, tmp_path / "one", "--jobs", 1)
    two = _traj(run_dir, tmp_path / "two", "--jobs", 2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    # the reference: pair_alignment per pair (its own SVDs), at the k of the first checkpoint
    net = load(str(run_dir / "step_30.safetensors"))
    ks = {}
    first = load(str(run_dir / "step_10.safetensors"))
    for p in first.pairs:
        ks[p.name] = pair_metrics(first.matrix(p.left), first.matrix(p.right),
                                  first.bias(p.left))[1]
    for p in net.pairs:
        ref, _ = pair_metrics(net.matrix(p.left), net.matrix(p.right), net.bias(p.left),
                              k=ks[p.name])
        got = one[(one.step == 30) & (one.pair == p.name)].set_index("metric").value
        for m in METRICS:
            assert got[m] == pytest.approx(ref[m], rel=1e-9, abs=1e-12), (p.name, m)
    # flags.csv from the checkpoint tasks' flag files = FlagHistory.add on each checkpoint
    from flagalign.commands.trajectory import list_checkpoints
    from flagalign.diagnostics.flag_drift import FlagHistory

    hist = FlagHistory()
    for step, path in list_checkpoints(run_dir):
        hist.add(step, path.name, load(str(path)))
    flags = pd.read_csv(tmp_path / "one" / "flags.csv").drop(columns=["run_id"], errors="ignore")
    ref_flags = hist.table()
    assert list(flags.columns) == list(ref_flags.columns) and len(flags) == len(ref_flags)
    for c in ("distance_prev", "distance_mean", "baseline"):
        np.testing.assert_allclose(flags[c].to_numpy(float), ref_flags[c].to_numpy(float),
                                   rtol=1e-12, atol=1e-15, equal_nan=True)
    recs = (tmp_path / "one" / "trajectory.jsonl").read_text().splitlines()
    assert json.loads(recs[0])["format"].startswith("flagalign-trajectory")
    assert sorted(json.loads(r)["step"] for r in recs[1:]) == [10, 20, 30, 40, 50, 60]


def test_a_cut_run_resumes_from_the_records_on_disk(run_dir, tmp_path):
    full = _traj(run_dir, tmp_path / "full", "--jobs", 1)
    lines = (tmp_path / "full" / "trajectory.jsonl").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut"
    cut.mkdir()
    import shutil

    # each record's flags file is written before the record (a killed run leaves both)
    shutil.copytree(tmp_path / "full" / "trajectory-flags", cut / "trajectory-flags")
    kept = json.loads(lines[2])  # step 20 (lines: header, 10, 20, ...)
    kept["pairs"][0]["values"]["overlap"] = 0.123456789  # a marker: a skipped record is reused
    torn = lines[3][: len(lines[3]) // 2]  # killed half-way through writing step 30
    (cut / "trajectory.jsonl").write_text(lines[0] + lines[1] + json.dumps(kept) + "\n" + torn)
    got = _traj(run_dir, cut, "--jobs", 1)
    recs = [json.loads(x) for x in (cut / "trajectory.jsonl").read_text().splitlines()[1:]]
    assert sorted(r["step"] for r in recs) == [10, 20, 30, 40, 50, 60]  # torn line dropped, redone
    marker = got[(got.step == 20) & (got.pair == kept["pairs"][0]["pair"]) & (got.metric == "overlap")]
    assert marker.value.iloc[0] == 0.123456789
    other = got[~((got.step == 20) & (got.metric == "overlap"))].reset_index(drop=True)
    ref = full[~((full.step == 20) & (full.metric == "overlap"))].reset_index(drop=True)
    pd.testing.assert_frame_equal(other, ref, check_exact=True)
    # --fresh recomputes everything; another --k refuses to mix records
    fresh = _traj(run_dir, cut, "--jobs", 1, "--fresh")
    pd.testing.assert_frame_equal(fresh, full, check_exact=True)
    assert main(["trajectory", str(run_dir), "--out", str(cut), "--quiet", "--k", "1"]) == 2


def test_speculative_checkpoints_are_redone_when_k_changes(tmp_path):
    """`--jobs 2` starts every checkpoint at once with the default k; a checkpoint whose pairs'
    default k differs from the first checkpoint's (here: the first checkpoint's hidden layer has
    rank 2, so its k is 2 where the later ones' default is 4) is run again with the first one's
    k — the output equals `--jobs 1`'s exactly."""
    from safetensors.numpy import save_file

    folder = tmp_path / "ckpts"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for s in range(1, 6):
        w0 = rng.standard_normal((16, 6))
        if s == 1:  # rank 2 at the first step: k = min(⌊16/4⌋, rank) = 2
            w0 = rng.standard_normal((16, 2)) @ rng.standard_normal((2, 6))
        sd = {"0.weight": w0.astype(np.float32),
              "1.weight": rng.standard_normal((9, 16)).astype(np.float32)}
        save_file(sd, str(folder / f"step_{s}.safetensors"))
    one = _traj(folder, tmp_path / "one", "--jobs", 1)
    two = _traj(folder, tmp_path / "two", "--jobs", 2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    recs = [json.loads(r) for r in (tmp_path / "two" / "trajectory.jsonl").read_text().splitlines()[1:]]
    assert {p["k"] for r in recs for p in r["pairs"]} == {2}
    assert sorted(r["step"] for r in recs) == [1, 2, 3, 4, 5]
