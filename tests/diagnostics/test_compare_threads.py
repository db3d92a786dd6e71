"""compare_networks runs with pinned BLAS threads (flagalign._threads.blas_threads)."""

import contextlib

import numpy as np
import pytest

from flagalign import InputError


def test_compare_runs_inside_the_thread_limit(monkeypatch):
    import flagalign._threads as threads_mod
    from flagalign.diagnostics.compare import compare_networks
    from flagalign.models.network import Network

    rng = np.random.default_rng(0)
    a = {"w1": rng.standard_normal((8, 6)), "w2": rng.standard_normal((5, 8))}
    b = {n: w + 0.1 * rng.standard_normal(w.shape) for n, w in a.items()}
    na, nb = Network.from_arrays(a, pairs=[]), Network.from_arrays(b, pairs=[])
    calls = []
    real = threads_mod.blas_threads

    @contextlib.contextmanager
    def limit(n=1):
        calls.append(n)
        with real(n):
            yield

    import flagalign.diagnostics.compare as compare_mod

    monkeypatch.setattr(compare_mod, "blas_threads", limit)  # the name compare_networks calls
    t1, _ = compare_networks(na, nb)
    tn, _ = compare_networks(na, nb, threads=None)
    assert calls == [1, None]
    num = t1.select_dtypes("number").columns
    np.testing.assert_allclose(t1[num].to_numpy(float), tn[num].to_numpy(float), rtol=1e-10)
    with pytest.raises(InputError, match="threads"):
        compare_networks(na, nb, threads=0)
