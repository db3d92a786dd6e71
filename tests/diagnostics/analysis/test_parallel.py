"""``analyze(jobs=N)``: the matrix and pair tasks in worker processes give the same table as the
in-process run (same pure functions, one BLAS thread each), in plan order, for a file source
(workers read their own tensors), a Network loaded from a file, and in-memory arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flagalign
from flagalign.errors import InputError
from flagalign.models.network import Network


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    dims = [24, 48, 40, 40, 56, 32, 24]
    mats = {f"{i}.weight": rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32)
            for i in range(len(dims) - 1)}
    mats["3.weight"][:] = 0.0  # a zero matrix: its two pairs carry the reason
    mats["5.weight"][:, :8] = 0.0  # rank-deficient reader
    return mats


def _frame(an):
    return an.pairs.drop(columns=["seconds"])


def _same(a, b):
    pd.testing.assert_frame_equal(_frame(a), _frame(b), check_exact=True)
    assert list(a.flag_tables) == list(b.flag_tables)
    for k in a.flag_tables:
        np.testing.assert_array_equal(a.flag_tables[k], b.flag_tables[k])
        np.testing.assert_array_equal(a.angles[k], b.angles[k])
    assert a.summary["svds"] == b.summary["svds"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from safetensors.numpy import save_file

    path = tmp_path_factory.mktemp("par") / "chain.safetensors"
    save_file(_arrays(), str(path))
    return str(path)


def test_jobs_identical_to_in_process_on_a_file(model_file):
    ref = flagalign.analyze(model_file, jobs=1, heads=False, progress=False)
    assert ref.summary["workers"] == 1
    assert (ref.pairs.status != "ok").sum() == 2  # the zero matrix's two pairs
    par = flagalign.analyze(model_file, jobs=2, heads=False, progress=False)
    assert par.summary["workers"] == 2
    _same(ref, par)
    net = flagalign.load(model_file)  # a Network that remembers its file: workers re-read it
    _same(ref, flagalign.analyze(net, jobs=2, heads=False, progress=False))


def test_jobs_identical_on_in_memory_arrays():
    net = Network.from_arrays({k: v.astype(np.float64) for k, v in _arrays(1).items()},
                              biases={"0.weight": np.linspace(-1, 1, 48)})
    ref = flagalign.analyze(net, jobs=1, heads=False, progress=False)
    _same(ref, flagalign.analyze(net, jobs=2, heads=False, progress=False))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_jobs_is_an_input_error(bad, model_file):
    with pytest.raises(InputError, match="jobs"):
        flagalign.analyze(model_file, jobs=bad, progress=False)
