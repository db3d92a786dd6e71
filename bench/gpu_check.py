"""GPU check: analyze a synthetic bf16 Llama (TinyLlama-1.1B shape, a few layers) on CUDA in
float64 and float32 and with numpy on the CPU (all cores, one BLAS thread per worker), same
layers, same run; prints one JSON summary (times, speedups, max differences, per-layer
extrapolation to 22 layers and an 8B FLOP-model estimate).

Needs only numpy, scipy, pandas, safetensors, tqdm, rich, matplotlib, threadpoolctl, torch and
this package (PYTHONPATH=src); no gguf, no dask, no network. Runtime on an H200 + 16 cores with
the default 2 layers: ~1–3 min (the CPU run dominates).

Usage:
  PYTHONPATH=src python bench/gpu_check.py [--layers 2] [--device cuda] [--jobs 0 (= cores)]
         [--dir /tmp/flagalign-gpu-check] [--d 2048 --ffn 5632 --heads 32 --kv-heads 4]
         [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import flagalign  # noqa: E402
from write_synthetic_llama import llama_shapes, write  # noqa: E402

FLOATS = ["overlap", "angle_median_deg", "commutator", "commutator_null", "imbalance",
          "imbalance_diag", "imbalance_offdiag", "imbalance_abs"]
INTS = ["k", "intersection_dim", "lost_dims", "status"]


def _flops(layers, d, ffn, heads, kv):
    """A per-model FLOP proxy: Σ m·n·min(m, n) over the matrices of the blocks (factors) plus
    n³ per hidden space of an MLP/attention pair (the C = AB product)."""
    tot = 0.0
    for name, shp in llama_shapes(layers, d, ffn, heads, kv, 8):
        if len(shp) == 2 and "layers" in name:
            m, n = shp
            tot += float(m) * n * min(m, n)
    tot += layers * (float(ffn) ** 3 + 2.0 * float(d) ** 3)
    return tot


def _diff(a, b):
    out = {}
    for c in FLOATS:
        x, y = a.pairs[c].to_numpy(float), b.pairs[c].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        r = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300)
        out[c] = float(r.max()) if r.size else None
    for c in INTS:
        out[c + "_mismatches"] = int((a.pairs[c] != b.pairs[c]).sum())
    return out


def _timed(src, **kw):
    t = time.perf_counter()
    an = flagalign.analyze(src, heads=False, progress=False, **kw)
    return an, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--device", default="cuda", help="cuda (or cpu-torch to try the script)")
    ap.add_argument("--jobs", type=int, default=0, help="CPU workers (0: physical cores)")
    ap.add_argument("--dir", default="/tmp/flagalign-gpu-check")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    res = {"shape": {"layers": a.layers, "d": a.d, "ffn": a.ffn, "heads": a.heads,
                     "kv_heads": a.kv_heads, "dtype": "bfloat16"}}
    try:
        import torch

        res["torch"] = torch.__version__
        res["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        res["torch"] = None
    from flagalign._parallel import physical_cores

    jobs = a.jobs or physical_cores()
    res["cpu_jobs"] = jobs
    t = time.perf_counter()
    src = write(a.dir, layers=a.layers, d=a.d, ffn=a.ffn, heads=a.heads, kv=a.kv_heads,
                vocab=a.vocab)
    res["write_seconds"] = round(time.perf_counter() - t, 2)
    dev = "torch" if a.device == "cpu-torch" else a.device
    # warm-up: CUDA context, cuSOLVER handles (not timed)
    flagalign.analyze(flagalign.models.network.Network.from_arrays(
        {"a": np.random.default_rng(0).standard_normal((64, 32)),
         "b": np.random.default_rng(1).standard_normal((16, 64))}),
        heads=False, progress=False, device=dev)
    g64, t64 = _timed(src, device=dev)
    g32, t32 = _timed(src, device=dev, precision="float32")
    cpu, tc = _timed(src, jobs=jobs)
    res["pairs"] = int(len(cpu.pairs))
    res["pairs_ok"] = int((cpu.pairs.status == "ok").sum())
    res["seconds"] = {"numpy_cpu": round(tc, 2), "torch_float64": round(t64, 2),
                      "torch_float32": round(t32, 2)}
    res["speedup_vs_cpu"] = {"float64": round(tc / t64, 2), "float32": round(tc / t32, 2)}
    res["max_rel_diff_vs_numpy"] = {"float64": _diff(g64, cpu), "float32": _diff(g32, cpu)}
    per = {k: v / a.layers for k, v in res["seconds"].items()}
    res["per_layer_seconds"] = {k: round(v, 3) for k, v in per.items()}
    res["extrapolated_22_layers_seconds"] = {k: round(22 * v, 1) for k, v in per.items()}
    ratio = _flops(32, 4096, 14336, 32, 8) / _flops(a.layers, a.d, a.ffn, a.heads, a.kv_heads)
    res["estimate_8B_seconds_flop_model"] = {k: round(v * a.layers * ratio, 1)
                                             for k, v in per.items()}
    res["note"] = ("extrapolations are linear in layers from the measured layers; 8B = Llama-3-8B "
                   "shape (d 4096, ffn 14336, 32 layers, 8 kv heads) by the FLOP proxy _flops")
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
