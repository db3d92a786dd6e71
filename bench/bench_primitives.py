"""The unit costs behind issue 11's lower bounds (docs/benchmarks.md), on this machine, one thread.

For d = 576 (SmolLM2) and d = 2048 (the 1.1B shape), float64, one BLAS thread (threadpoolctl),
median of ``--repeat`` runs on a random 8/3·d × d matrix A (the MLP matrices' shape) and its Gram:

* ``gram``: G = AᵀA (the floor's unit: one Gram per analysed matrix);
* ``topk_evr``: the top-64 eigenpairs of G (LAPACK syevr with an index subset — what
  ``geometry.gram.gram_factors`` calls for a certified matrix);
* ``sytrd``: G's tridiagonal reduction alone (dsytrd), which every dense symmetric eigensolver pays
  first, whatever follows;
* ``product``: one d × d × d product (the pair products' unit: commutator, W′W);
* ``tall_qr_svd``: Householder QR of A plus the full SVD of its d × d R (gesdd): the route of a
  tall writer whose Gram cannot certify its rank (``geometry.gram.tall_svd_factors``).

The OpenBLAS kernel (``architecture`` from threadpoolctl) is printed: the ratios between these
operations differ between CPUs (AVX2 vs AVX-512 kernels).

Usage:  python bench/bench_primitives.py [--sizes 576,2048] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def primitives(d: int, repeat: int = 5, k: int = 64, seed: int = 0) -> dict:
    import numpy as np
    import scipy.linalg as sla

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((8 * d // 3, d))
    g = a.T @ a
    out = {"d": d, "rows": a.shape[0], "k": k}
    out["gram_s"] = _median_time(lambda: a.T @ a, repeat)
    out["topk_evr_s"] = _median_time(
        lambda: sla.eigh(g, subset_by_index=[d - k, d - 1], driver="evr", check_finite=False),
        repeat)
    lwork = int(sla.lapack.dsytrd_lwork(d, lower=0)[0])  # the blocked reduction's workspace
    out["sytrd_s"] = _median_time(lambda: sla.lapack.dsytrd(g, lower=0, lwork=lwork), repeat)
    out["product_s"] = _median_time(lambda: g @ g, repeat)

    def tall():
        r = sla.qr(a, mode="r", check_finite=False)[0][:d]
        sla.svd(r, full_matrices=False, check_finite=False)

    out["tall_qr_svd_s"] = _median_time(tall, max(1, repeat // 2))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="576,2048")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import scipy.linalg  # noqa: F401 - load both OpenBLAS builds before asking for their kernels
    from threadpoolctl import threadpool_info, threadpool_limits

    arch = sorted({i.get("architecture") or "?" for i in threadpool_info()
                   if i.get("internal_api") == "openblas"})
    rows = []
    with threadpool_limits(1):
        for d in (int(x) for x in args.sizes.split(",")):
            rows.append(primitives(d, args.repeat))
    print(f"OpenBLAS kernels: {', '.join(arch)}; 1 BLAS thread; median of {args.repeat}")
    print(f"{'d':>6} {'gram ms':>9} {'top64 evr':>10} {'sytrd':>8} {'d^3 prod':>9} {'QR+SVD':>8}")
    for r in rows:
        print(f"{r['d']:>6} {1e3 * r['gram_s']:>9.1f} {1e3 * r['topk_evr_s']:>10.1f} "
              f"{1e3 * r['sytrd_s']:>8.1f} {1e3 * r['product_s']:>9.1f} "
              f"{1e3 * r['tall_qr_svd_s']:>8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"architecture": arch, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
