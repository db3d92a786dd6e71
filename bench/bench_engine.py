"""Engine benchmarks (issue 11), each measurement in a fresh process, one BLAS thread per process:

* ``llama``: full ``analyze`` of synthetic bf16 Llamas (bench/write_synthetic_llama.py) at
  d ∈ {512, 1024, 2048} (ffn = 2.75·d, heads d/64, kv heads heads/8), ``--layers`` blocks each,
  next to the floor (bench/bench_floor.py: load/dequantize + one float64 Gram per analysed
  matrix) in the same run; the scaling exponent of time in d (least squares on log-log);
* ``trajectory``: 8 checkpoints (copies of a d = 512 model with different seeds) with
  ``--jobs 1`` against 8 × ``analyze`` of one of them, and ``--jobs 2`` against ``--jobs 1``.

Usage: python bench/bench_engine.py [--layers 2] [--sizes 512,1024,2048] [--dir /tmp/fa-bench]
       [--json out.json]
Prints one JSON line per measurement and a summary; states the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PIN = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "MPLBACKEND": "Agg"}

_ANALYZE = r"""
import json, resource, sys, time, flagalign
t = time.perf_counter()
an = flagalign.analyze(sys.argv[1], heads=False, progress=False, jobs=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "pairs": len(an.pairs),
                  "ok": int((an.pairs.status == "ok").sum()),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "largest_matrix_f64_mb": max(8 * m.shape[0] * m.shape[1]
                      for m in flagalign.load(sys.argv[1]).matrices.values()) / 2**20}))
"""


def _py(args, env_extra=None):
    env = dict(os.environ, **PIN, **(env_extra or {}))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return r.stdout, wall


def _analyze(src, jobs=1):
    out, _ = _py(["-c", _ANALYZE, src, str(jobs)])
    return json.loads(out.strip().splitlines()[-1])


def _floor(src):
    out, _ = _py([os.path.join(HERE, "bench_floor.py"), src, "--json", "/dev/stdout"])
    lines = [x for x in out.strip().splitlines() if x.startswith("{")]
    try:
        return json.loads(out[out.index("{"):])
    except ValueError:
        return json.loads(lines[-1])


def _write(path, d, layers, seed=0):
    heads = max(1, d // 64)
    kv = max(1, heads // 8)
    ffn = int(round(2.75 * d / 64)) * 64
    _py([os.path.join(HERE, "write_synthetic_llama.py"), path, "--layers", str(layers), "--d",
         str(d), "--ffn", str(ffn), "--heads", str(heads), "--kv-heads", str(kv), "--vocab",
         "1024", "--seed", str(seed)])
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--dir", default="/tmp/fa-bench")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: llama,trajectory")
    ap.add_argument("--json", default=None)
    ap.add_argument("--traj-d", type=int, default=512,
                    help="hidden size of the 8 trajectory checkpoints (2 blocks each)")
    a = ap.parse_args(argv)
    res = {"load_avg_start": os.getloadavg(), "layers": a.layers, "threads_per_process": 1}
    skip = set(filter(None, a.skip.split(",")))
    if "llama" not in skip:
        res["llama"] = []
        for d in map(int, a.sizes.split(",")):
            src = _write(os.path.join(a.dir, f"llama-d{d}"), d, a.layers)
            an = _analyze(src)
            fl = _floor(src)
            row = {"d": d, "analyze": an, "floor_s": fl.get("floor_s", fl.get("total_s")),
                   "floor": fl}
            print(json.dumps(row), flush=True)
            res["llama"].append(row)
        import numpy as np

        ds = np.log([r["d"] for r in res["llama"]])
        ts = np.log([r["analyze"]["seconds"] for r in res["llama"]])
        if len(ds) >= 2:
            res["exponent"] = float(np.polyfit(ds, ts, 1)[0])
    if "trajectory" not in skip:
        ck = os.path.join(a.dir, "ckpts")
        shutil.rmtree(ck, ignore_errors=True)
        os.makedirs(ck)
        for s in range(8):
            p = _write(os.path.join(a.dir, f"traj-{s}"), a.traj_d, a.layers, seed=s)
            shutil.move(p, os.path.join(ck, f"step_{100 * (s + 1)}"))  # folder + config.json
        one = _analyze(os.path.join(ck, "step_100"))
        tr = {}
        for jobs in (1, 2):
            out = os.path.join(a.dir, f"traj-out-{jobs}")
            shutil.rmtree(out, ignore_errors=True)
            _, wall = _py(["-m", "flagalign", "trajectory", ck, "--out", out, "--quiet",
                           "--jobs", str(jobs)], {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
            tr[jobs] = wall
        res["trajectory"] = {"d": a.traj_d, "analyze_one_s": one["seconds"], "jobs1_total_s": tr[1],
                             "jobs2_total_s": tr[2], "per_checkpoint_jobs1_s": tr[1] / 8,
                             "per_checkpoint_over_analyze": tr[1] / 8 / one["seconds"],
                             "jobs2_speedup": tr[1] / tr[2]}
        print(json.dumps(res["trajectory"]), flush=True)
    res["load_avg_end"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
