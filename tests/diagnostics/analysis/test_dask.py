"""``analyze(scheduler=...)`` and ``trajectory --scheduler`` on a Dask cluster (a LocalCluster of
two worker processes, one thread each): the same numbers as the local run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flagalign

distributed = pytest.importorskip("distributed", reason="dask.distributed not installed "
                                  "(pip install 'flagalign[dask]')")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as lc, Client(lc) as client:
        yield lc, client


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(2)
    dims = [16, 40, 24, 48, 8]
    mats = {f"{i}.weight": rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32)
            for i in range(len(dims) - 1)}
    mats["0.bias"] = rng.standard_normal(40).astype(np.float32)
    path = tmp_path_factory.mktemp("dask") / "chain.safetensors"
    save_file(mats, str(path))
    return path


def test_analyze_on_dask_matches_local(cluster, model_file):
    lc, client = cluster
    ref = flagalign.analyze(str(model_file), jobs=1, heads=False, progress=False)
    for sched in (client, lc.scheduler_address):  # a Client, or the address as the CLI gives it
        got = flagalign.analyze(str(model_file), scheduler=sched, heads=False, progress=False)
        assert got.summary["workers"] == "dask"
        pd.testing.assert_frame_equal(ref.pairs.drop(columns=["seconds"]),
                                      got.pairs.drop(columns=["seconds"]), check_exact=True)


def test_trajectory_on_dask_matches_local(cluster, model_file, tmp_path):
    from safetensors.numpy import load_file, save_file

    from flagalign.cli import main

    lc, _ = cluster
    base = load_file(str(model_file))
    ck = tmp_path / "ck"
    ck.mkdir()
    for s in (1, 2, 3, 4):
        save_file({k: (v * 0.8**s).astype(np.float32) for k, v in base.items()},
                  str(ck / f"step_{s}.safetensors"))
    assert main(["trajectory", str(ck), "--out", str(tmp_path / "a"), "--quiet", "--jobs", "1"]) == 0
    assert main(["trajectory", str(ck), "--out", str(tmp_path / "b"), "--quiet",
                 "--scheduler", lc.scheduler_address]) == 0
    a, b = (pd.read_csv(tmp_path / x / "trajectory.csv").drop(columns=["run_id"], errors="ignore")
            for x in ("a", "b"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
