"""Benchmark: `flagalign analyze` vs WeightWatcher `analyze()` on the same weights.

Each measurement runs in its own fresh Python process (so peak RSS is that run's alone) with
BLAS/torch threads pinned to 1:

* flagalign: ``flagalign.analyze(model, heads=False)`` + ``save(csv, json, html)`` — load,
  every pair's alignment, the report (wall time includes reading and dequantizing the file);
* weightwatcher: ``WeightWatcher(model=m).analyze()`` with default options on a torch module
  holding the same matrices as ``nn.Linear`` layers (built from ``flagalign.load``'s dequantized
  weights; the build is timed separately and not counted).

Usage:  python bench/bench_analyze.py [minilm smollm2] [--repeat 1] [--json out.json]
Needs `pip install weightwatcher` (not a flagalign dependency). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PIN = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "MPLBACKEND": "Agg"}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker_flagalign(model: str) -> dict:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import flagalign.diagnostics as d

    t = time.perf_counter()
    c = _cpu_s()
    an = d.analyze(model, progress=False, heads=False, jobs=1)  # one thread, in process
    t_an = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as out:
        an.save(out, formats=("csv", "json", "html"))
    wall = time.perf_counter() - t
    return {
        "tool": "flagalign",
        "model": model,
        "wall_s": wall,
        "cpu_s": _cpu_s() - c,
        "analyze_s": t_an,
        "peak_rss_mib": _peak_rss_mib(),
        "pairs": int(len(an.pairs)),
        "matrices": an.summary["matrices_analysed"],
        "values_per_pair": 16,
    }


def _torch_module(model: str):
    """An nn.Module with one nn.Linear per stored (non-derived) 2-D weight of the model."""
    import torch

    from flagalign.models.loader import load

    net = load(model)
    mods = torch.nn.ModuleList()
    for name, info in net.matrices.items():
        if info.derived or info.role in ("embedding",):
            continue
        w = torch.from_numpy(net.matrix(name).astype("float32"))
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        mods.append(lin)
    return torch.nn.Sequential(*mods)


def worker_weightwatcher(model: str) -> dict:
    import logging

    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    import weightwatcher as ww

    t = time.perf_counter()
    m = _torch_module(model)
    t_build = time.perf_counter() - t
    rss_build = _peak_rss_mib()
    t = time.perf_counter()
    c = _cpu_s()
    watcher = ww.WeightWatcher(model=m)
    details = watcher.analyze()
    wall = time.perf_counter() - t
    return {
        "tool": "weightwatcher",
        "model": model,
        "wall_s": wall,
        "cpu_s": _cpu_s() - c,
        "build_s": t_build,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_after_build_mib": rss_build,
        "layers": int(len(details)),
        "version": getattr(ww, "__version__", "?"),
    }


def _spawn(tool: str, model: str) -> dict:
    env = dict(os.environ, **PIN)
    r = subprocess.run([sys.executable, __file__, "--worker", tool, model], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        return {"tool": tool, "model": model, "error": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["minilm", "smollm2"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", choices=("flagalign", "weightwatcher"), default=None)
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        fn = worker_flagalign if a.worker[0] == "flagalign" else worker_weightwatcher
        print(json.dumps(fn(a.worker[1])))
        return 0
    results = []
    for model in a.models:
        for _ in range(a.repeat):
            for tool in ("flagalign", "weightwatcher"):
                if a.only and tool != a.only:
                    continue
                res = _spawn(tool, model)
                print(json.dumps(res), flush=True)
                results.append(res)
    print("\nmodel     tool           wall s    CPU s   peak RSS MiB")
    for r in results:
        if "error" in r:
            print(f"{r['model']:9s} {r['tool']:13s}  error: {r['error']}")
        else:
            print(f"{r['model']:9s} {r['tool']:13s} {r['wall_s']:7.1f} {r['cpu_s']:8.1f}"
                  f"   {r['peak_rss_mib']:8.0f}")
    for model in a.models:
        f = [r for r in results if r["model"] == model and r["tool"] == "flagalign" and "wall_s" in r]
        w = [r for r in results if r["model"] == model and r["tool"] == "weightwatcher" and "wall_s" in r]
        if f and w:
            fb = min(r["wall_s"] for r in f)
            wb = min(r["wall_s"] for r in w)
            fc = min(r["cpu_s"] for r in f)
            wc = min(r["cpu_s"] for r in w)
            print(f"{model}: weightwatcher / flagalign wall time = {wb / fb:.2f}x, CPU time = "
                  f"{wc / fc:.2f}x; peak RSS "
                  f"{min(r['peak_rss_mib'] for r in w):.0f} vs {min(r['peak_rss_mib'] for r in f):.0f} MiB")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
