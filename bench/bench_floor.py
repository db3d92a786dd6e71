"""The floor of `flagalign analyze` for a model: load/dequantize every analysed matrix once plus
one float64 Gram on its smaller side, one BLAS thread (issue 11).

"Analysed" = every matrix named by a pair of ``flagalign.load(model).pairs`` (per-head slices and
stacked matrices included). Load: ``network.matrix`` of each *stored* tensor behind them, once
(read + dequantize/upcast + norm folding); Gram: G = AᵀA or AAᵀ (the smaller, float64, one BLAS
thread via threadpoolctl) of every analysed matrix, slices included. The floor is their sum; a full
analysis must at least read each matrix and touch it with one Gram-sized product.

Usage:  python bench/bench_floor.py MODEL [--layers 0,1] [--json out.json]
MODEL: an alias (smollm2, minilm), a file or a folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def floor(model: str, layers=None) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    import flagalign

    with threadpool_limits(1):
        t0 = time.perf_counter()
        net = flagalign.load(model)
        t_open = time.perf_counter() - t0
        pairs = net.pairs
        names = []
        for p in pairs:
            for n in (p.left, p.right):
                if n not in names:
                    names.append(n)
        if layers is not None:
            keep = {f"layers.{i}." for i in layers} | {f"blk.{i}." for i in layers}
            names = [n for n in names if any(k in n for k in keep)]
        # each stored tensor is read once: time the load of one non-derived matrix per
        # source tensor (per-head slices and stacked qkv are cut from tensors read already)
        stored = {}
        for n, info in net.matrices.items():
            if not info.derived:
                stored.setdefault(info.source_key, n)
        keys = []
        for n in names:
            for k in str(net.matrices[n].source_key).split(" + "):
                if k in stored and k not in keys:
                    keys.append(k)
        t_load = t_gram = 0.0
        for k in keys:
            t = time.perf_counter()
            a = net.matrix(stored[k])
            t_load += time.perf_counter() - t
            del a
        flops = 0.0
        for name in names:
            a = net.matrix(name)
            m, n = a.shape
            t = time.perf_counter()
            g = a.T @ a if m >= n else a @ a.T
            t_gram += time.perf_counter() - t
            flops += 2.0 * max(m, n) * min(m, n) ** 2
            del a, g
    return {
        "model": model,
        "matrices": len(names),
        "stored_tensors_read": len(keys),
        "open_s": t_open,
        "load_s": t_load,
        "gram_s": t_gram,
        "floor_s": t_open + t_load + t_gram,
        "gram_gflop": flops / 1e9,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "blas_threads": 1,
        "numpy": np.__version__,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--layers", default=None, help="comma-separated layer indices to keep")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    layers = [int(x) for x in a.layers.split(",")] if a.layers else None
    r = floor(a.model, layers)
    print(f"{r['model']}: {r['matrices']} matrices ({r['stored_tensors_read']} stored tensors), open {r['open_s']:.2f} s + load/dequantize "
          f"{r['load_s']:.2f} s + Grams {r['gram_s']:.2f} s ({r['gram_gflop']:.1f} GFLOP) = floor "
          f"{r['floor_s']:.2f} s (1 BLAS thread, peak RSS {r['peak_rss_mib']:.0f} MiB)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
