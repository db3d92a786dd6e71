"""Worker pools of flagalign: local processes (one BLAS thread each) or a Dask cluster.

:func:`make_pool` returns an object with ``submit(fn, *args) -> future``, ``wait_first(futures)``
(the completed ones) and ``close()``; ``future.result()`` returns the value or raises. The local
pool is a :class:`concurrent.futures.ProcessPoolExecutor` on the ``forkserver`` (else ``spawn``)
start method whose workers limit BLAS/OpenMP to one thread before any work
(:func:`init_worker`), so ``jobs`` workers use ``jobs`` cores and never oversubscribe. The Dask
pool (``scheduler="tcp://HOST:PORT"`` or a ``distributed.Client``) is imported only when asked:
the local default needs no Dask. Every task function calls :func:`init_worker` itself, so a Dask
worker gets the same one-thread limit.
"""

from __future__ import annotations

import contextlib
import os

from ._threads import set_process_blas_threads
from .errors import InputError, MissingDependencyError

__all__ = ["physical_cores", "check_jobs", "init_worker", "make_pool", "LocalPool", "DaskPool"]

_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_LIMITER = None


def physical_cores() -> int:
    """Physical cores available to this process (psutil when installed, else logical CPUs),
    never more than the CPUs in the affinity mask."""
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        avail = os.cpu_count() or 1
    try:
        import psutil  # optional: physical (not hyper-thread) cores

        phys = psutil.cpu_count(logical=False) or avail
    except ImportError:  # pragma: no cover - psutil absent
        phys = avail
    return max(1, min(int(phys), int(avail)))


def check_jobs(jobs) -> int:
    """``jobs`` as a worker count: None → :func:`physical_cores`; else a positive integer."""
    if jobs is None:
        return physical_cores()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs={jobs!r}: need a positive integer (1 = in-process, no pool)")
    return int(jobs)


def init_worker() -> None:
    """Limit this process's BLAS/OpenMP pools to one thread (idempotent; the pool initializer,
    and the first line of every task so Dask workers get it too)."""
    global _LIMITER
    if _LIMITER is not None:
        return
    for v in _THREAD_VARS:
        os.environ[v] = "1"
    set_process_blas_threads(1)
    _LIMITER = True


@contextlib.contextmanager
def _single_thread_env():
    """The BLAS/OpenMP thread variables set to 1 while worker processes are started (they read
    them when numpy is first imported), restored afterwards."""
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    try:
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


class LocalPool:
    """``jobs`` worker processes, one BLAS thread each."""

    kind = "local"

    def __init__(self, jobs: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        # the children inherit these at start: BLAS reads them when numpy is first imported
        with _single_thread_env():
            self._ex = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(method),
                                              initializer=init_worker)
        self.workers = jobs

    def submit(self, fn, *args):
        with _single_thread_env():  # workers start on first submit
            return self._ex.submit(fn, *args)

    @staticmethod
    def wait_first(futures):
        import concurrent.futures as cf

        done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return done

    def close(self):
        self._ex.shutdown(wait=True, cancel_futures=True)


class DaskPool:
    """Tasks on a Dask distributed cluster (``scheduler`` address or a ``distributed.Client``)."""

    kind = "dask"

    def __init__(self, scheduler):
        try:
            import distributed  # deferred: optional (pip install flagalign[dask])
        except ImportError:
            raise MissingDependencyError(
                "a Dask scheduler needs dask.distributed: pip install 'flagalign[dask]'") from None
        self._dist = distributed
        if isinstance(scheduler, distributed.Client):
            self.client, self._own = scheduler, False
        else:
            try:
                self.client = distributed.Client(str(scheduler), timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
            self._own = True
        info = self.client.scheduler_info()
        self.workers = max(1, sum(int(w.get("nthreads", 1))
                                  for w in info.get("workers", {}).values()))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait_first(self, futures):
        done, _ = self._dist.wait(list(futures), return_when="FIRST_COMPLETED")
        return done

    def close(self):
        if self._own:
            self.client.close()


def make_pool(jobs: int, scheduler=None):
    """:class:`DaskPool` when ``scheduler`` is given, else :class:`LocalPool` of ``jobs``."""
    if scheduler is not None:
        return DaskPool(scheduler)
    return LocalPool(jobs)
