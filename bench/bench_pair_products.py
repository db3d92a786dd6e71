"""Pair products (commutator, imbalance, lost_dims; docs/theory.md eqs. (10)–(12), (16)–(19)):
``geometry.factored.pair_products`` vs the path ``analyze`` uses today
(``diagnostics.measure.measure_pair`` with the one-sided factors of ``diagnostics.factors``), one
BLAS thread, same process, best of ``--repeat``.

Factor tasks (per matrix, shared between pairs) are computed first and not timed; the timed
``measure_pair`` also does the k×k angle problem and flag table (k = 64), which pair_products
leaves to the assembler (timed separately as ``angles_s``).

Usage:  python bench/bench_pair_products.py [--smollm2-layers 3] [--tiny 2048,5632]
        [--tall 20000,2] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _best(f, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def compare(name, W, Wn, rtol_w, rtol_n, repeat=3, measure=True):
    from flagalign.diagnostics.factors import one_sided_factors, truncate
    from flagalign.diagnostics.measure import measure_pair
    from flagalign.geometry.angles import _cos_sin_orthonormal
    from flagalign.geometry.factored import pair_products
    from flagalign.geometry.flags import flag_table

    row = {"pair": name, "W": list(W.shape), "W_next": list(Wn.shape)}
    t_pp, pp = _best(lambda: pair_products(W, Wn, rtol_w=rtol_w, rtol_n=rtol_n), repeat)
    t_pp0, _ = _best(lambda: pair_products(W, Wn, rtol_w=rtol_w, rtol_n=rtol_n, lost=False), repeat)
    row.update(pair_products_s=t_pp, pair_products_nolost_s=t_pp0, route=pp.route, m=pp.m)
    if measure:
        k = 64
        left = one_sided_factors(W, k, "U", rtol_w)
        right = one_sided_factors(Wn, k, "V", rtol_n)
        if left is None or right is None:
            from flagalign.diagnostics.factors import compute_factors

            left = left or compute_factors(W, k, "exact")
            right = right or compute_factors(Wn, k, "exact")
        rn = getattr(right, "rank", None)
        t_m, pa = _best(lambda: measure_pair(W, Wn, left, truncate(right, k), k=k, tol=1e-6,
                                             rtol_w=rtol_w, rtol_n=rtol_n, rank_next=rn), repeat)
        from flagalign.diagnostics.measure import _commutator
        from flagalign.geometry.imbalance import imbalance_from_grams

        def products():
            g_w, g_n = W @ W.T, Wn.T @ Wn
            return _commutator(W, Wn, g_w, g_n)[0], imbalance_from_grams(g_w, g_n)

        t_mp, _ = _best(products, repeat)
        row.update(measure_products_s=t_mp, products_speedup=t_mp / t_pp0)
        u, v = left.U[:, :k], right.V[:, :k]
        t_a, _ = _best(lambda: (_cos_sin_orthonormal(u, v), flag_table(u, v)), repeat)
        row.update(measure_s=t_m, angles_s=t_a, speedup=(t_m - t_a) / t_pp,
                   commutator_rel_diff=abs(pp.commutator - pa.commutator) / max(pa.commutator, 1e-300),
                   imbalance_rel_diff=abs(pp.imbalance.full - pa.imbalance.full) / pa.imbalance.full,
                   offdiag_rel_diff=abs(pp.imbalance.offdiag - pa.imbalance.offdiag)
                   / max(pa.imbalance.offdiag, 1e-300),
                   lost_dims=(int(pp.lost_dims), int(pa.lost_dims)))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smollm2-layers", default="3")
    ap.add_argument("--tiny", default="2048,5632", help="d,ffn of a random bf16 MLP pair")
    ap.add_argument("--tall", default="20000,2", help="n,r of a W (n×r), W_next (r×n) pair")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import numpy as np
    from threadpoolctl import threadpool_limits

    import flagalign
    from flagalign.geometry import rank_rtol

    rows = []
    with threadpool_limits(1):
        if a.smollm2_layers:
            net = flagalign.load("smollm2")
            for layer in [int(x) for x in a.smollm2_layers.split(",")]:
                for p in net.pairs:
                    if p.kind == "mlp" and p.left.startswith(f"blk.{layer}."):
                        W, Wn = net.matrix(p.left), net.matrix(p.right)
                        dw, dn = net.matrices[p.left].dtype, net.matrices[p.right].dtype
                        rows.append(compare(p.name, W, Wn, rank_rtol(W.shape, dw),
                                            rank_rtol(Wn.shape, dn), a.repeat))
                        print(json.dumps(rows[-1]), file=sys.stderr)
        if a.tiny:
            d, ffn = (int(x) for x in a.tiny.split(","))
            rng = np.random.default_rng(0)
            bf = lambda x: (x.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32).astype(np.float64)  # noqa: E731
            W, Wn = bf(0.02 * rng.standard_normal((ffn, d))), bf(0.02 * rng.standard_normal((d, ffn)))
            rows.append(compare(f"random bf16 up {ffn}x{d} -> down {d}x{ffn}", W, Wn,
                                rank_rtol(W.shape, "bfloat16"), rank_rtol(Wn.shape, "bfloat16"),
                                max(1, a.repeat - 2)))
            print(json.dumps(rows[-1]), file=sys.stderr)
        if a.tall:
            n, r = (int(x) for x in a.tall.split(","))
            rng = np.random.default_rng(1)
            W, Wn = rng.standard_normal((n, r)), rng.standard_normal((r, n))
            rows.append(compare(f"{n}x{r} -> {r}x{n}", W, Wn, rank_rtol(W.shape), rank_rtol(Wn.shape),
                                a.repeat, measure=n <= 8000))
            print(json.dumps(rows[-1]), file=sys.stderr)
    for r in rows:
        extra = (f"measure_pair {r['measure_s']:.3f} s (angles/flags {r['angles_s']:.3f} s), "
                 f"speedup {r['speedup']:.2f}x, lost {r['lost_dims']}; products only (commutator + "
                 f"imbalance): measure.py {r['measure_products_s']:.3f} s vs "
                 f"{r['pair_products_nolost_s']:.3f} s = {r['products_speedup']:.2f}x") if "measure_s" in r else ""
        print(f"{r['pair']}: pair_products {r['pair_products_s']:.4f} s ({r['route']}, m={r['m']}) {extra}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
