"""The one BLAS-thread limiter of flagalign (threadpoolctl based).

Thousands of tiny QR/SVD calls run faster single-threaded than with more BLAS threads than free
cores (OpenBLAS spends its time synchronising: measured 0.6 s vs 0.009 s for one 576×64 QR on a
loaded 2-core machine). Every place that limits BLAS threads — ``analyze --threads``, the heads
and composition scans, the experiments — uses :func:`blas_threads`.
"""

from __future__ import annotations

import contextlib

from .errors import InputError, MissingDependencyError

__all__ = ["blas_threads", "set_process_blas_threads"]


def _threadpool_limits():
    try:
        from threadpoolctl import threadpool_limits  # deferred: only when a limit is asked
    except ImportError:
        raise MissingDependencyError(
            "limiting BLAS threads needs threadpoolctl: pip install threadpoolctl") from None
    return threadpool_limits


def _check(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"threads={n!r}: need a positive integer (or None for the BLAS default)")


def set_process_blas_threads(n: int = 1) -> None:
    """Limit the BLAS/OpenMP pools of the *whole process* to ``n`` threads, for good.

    For worker processes (a pool initializer, an experiment's worker) that do nothing else; in a
    user's process use the scoped :func:`blas_threads` instead.
    """
    _check(n)
    _threadpool_limits()(limits=n)


@contextlib.contextmanager
def blas_threads(n: int | None = 1):
    """Context manager limiting the BLAS/OpenMP thread pools to ``n`` threads.

    Parameters
    ----------
    n : int or None
        Number of threads; ``None`` leaves the pools as they are (a no-op).

    Raises
    ------
    InputError
        If ``n`` is not a positive integer.
    MissingDependencyError
        If ``n`` is given and threadpoolctl is not installed.
    """
    if n is None:
        yield
        return
    _check(n)
    with _threadpool_limits()(limits=n):
        yield
