"""The tracker measures with pinned BLAS threads (flagalign._threads.blas_threads)."""

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import flagalign.diagnostics.dynamics.tracker as tracker_mod  # noqa: E402
from flagalign import AlignmentTracker, InputError  # noqa: E402


def _spy(monkeypatch, module, inner_name):
    """Record the ``blas_threads(n)`` in force whenever ``module.inner_name`` runs."""
    state = {"limit": "unset", "seen": []}
    real_limit = module.blas_threads
    real_inner = getattr(module, inner_name)

    @contextlib.contextmanager
    def limit(n=1):
        old, state["limit"] = state["limit"], n
        with real_limit(n):
            yield
        state["limit"] = old

    def inner(*a, **kw):
        state["seen"].append(state["limit"])
        return real_inner(*a, **kw)

    monkeypatch.setattr(module, "blas_threads", limit)
    monkeypatch.setattr(module, inner_name, inner)
    return state


def _net():
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.Linear(6, 3))


@pytest.mark.parametrize("threads", [1, 3, None])
def test_tracker_measures_inside_the_thread_limit(monkeypatch, threads):
    state = _spy(monkeypatch, tracker_mod, "pair_metrics")
    kw = {} if threads == 1 else {"threads": threads}  # 1 is the default
    t = AlignmentTracker(_net(), **kw)
    t.step()
    assert state["seen"] == [threads] * 4  # 2 pairs x 2 records, every one under the limit
    assert t.last_record[0] == 1 and set(t.last_record[1]) == {p.name for p in t.pairs}


def test_tracker_values_do_not_depend_on_threads():
    a = AlignmentTracker(_net()).history
    b = AlignmentTracker(_net(), threads=None).history
    np.testing.assert_allclose(a.value, b.value, rtol=1e-10, atol=1e-14)


def test_tracker_rejects_bad_threads():
    with pytest.raises(InputError, match="threads"):
        AlignmentTracker(_net(), threads=0)
