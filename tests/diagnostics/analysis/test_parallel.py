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


def _unaligned(a):
    """A copy of ``a`` at an odd address (as Dask may deserialise it): numpy's matmul does not
    hand unaligned arrays to BLAS."""
    raw = np.empty(a.nbytes + 1, dtype=np.uint8)[1:]
    out = np.ndarray(a.shape, a.dtype, raw)
    out[...] = a
    assert not out.flags.aligned
    return out


def _reversed_f(a):
    """The same values as a reversed, Fortran-ordered view (as LAPACK's eigh output is sliced)."""
    if a.ndim != 2:
        return a
    return np.asfortranarray(a[:, ::-1])[:, ::-1]


def test_pair_rows_do_not_depend_on_memory_layout():
    """A pair measured from unaligned or reversed/F-ordered copies of its matrices and factors (what
    a worker may receive) gives the bit-identical row: the pair and matrix tasks bring every
    array to one layout first (store.c_layout)."""
    from flagalign.diagnostics.analysis.measure import measure_task
    from flagalign.diagnostics.analysis.plan import make_plan
    from flagalign.diagnostics.analysis.store import matrix_factors

    net = Network.from_arrays({k: v.astype(np.float64) for k, v in _arrays(1).items()},
                              biases={"0.weight": np.linspace(-1, 1, 48)})
    plan = make_plan(net)
    for task in plan.pairs:
        l, r = task.pair.left, task.pair.right
        W, Wn, b = net.matrix(l), net.matrix(r), net.bias(l)
        if not (np.any(W) and np.any(Wn)):
            continue
        fl, fr = (matrix_factors(plan.matrices[n], net.matrix(n)) for n in (l, r))
        ref = measure_task(task, W, Wn, fl, fr, bias=b)
        for move in (_unaligned, _reversed_f):
            args = [move(a) for a in (W, Wn)]
            facs = [f._replace(**{k: move(v) for k, v in f._asdict().items()
                                  if isinstance(v, np.ndarray)}) for f in (fl, fr)]
            got = measure_task(task, *args, *facs, bias=None if b is None else move(b))
            for key, val in ref[0].items():
                if key != "seconds":
                    assert got[0][key] == val or (val != val and got[0][key] != got[0][key]), \
                        (move.__name__, task.pair.name, key)
            np.testing.assert_array_equal(got[1], ref[1])
            np.testing.assert_array_equal(got[2], ref[2])
        # and matrix factors from a moved matrix are the same bits
        for n in (l, r):
            a = matrix_factors(plan.matrices[n], net.matrix(n))
            for move in (_unaligned, _reversed_f):
                bmf = matrix_factors(plan.matrices[n], move(net.matrix(n)))
                for x, y in zip(a, bmf):
                    if isinstance(x, np.ndarray):
                        np.testing.assert_array_equal(x, y)
