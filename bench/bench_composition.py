"""Benchmark: composition scores on SmolLM2-135M (30 layers × 9 heads, GQA 3 kv heads).

Acceptance (issue 5): completes with peak RSS < 1 GB. Each kind runs in a fresh subprocess so
its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, includes loading the model) is not
polluted by the parent. BLAS is pinned to one thread (threadpoolctl).

    python bench/bench_composition.py [--model smollm2] [--kinds q,k,v] [--max-mb 256]
                                      [--null gaussian|rotation]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from threadpoolctl import threadpool_limits
threadpool_limits(1)
from flagalign.models.loader import load
from flagalign.diagnostics.heads import composition
model, kind, max_mb, null = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
net = load(model)
t1 = time.perf_counter()
c = composition(net, kind, max_bytes=max_mb << 20, null=null, quiet=True)
t2 = time.perf_counter()
(bm, bs), = list(c.baseline.values())[:1]
print(json.dumps({
    "model": model, "kind": kind, "null": null, "max_mb": max_mb, "layers": len(net.attention),
    "heads": net.attention[0].heads, "kv_heads": net.attention[0].kv_heads,
    "head_pairs": len(c.scores), "load_s": round(t1 - t0, 2), "compute_s": round(t2 - t1, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "mean": round(float(c.scores.score.mean()), 5), "max": round(float(c.scores.score.max()), 5),
    "baseline_mean": round(bm, 5), "baseline_std": round(bs, 5),
    "frac_above_3sd": round(float((c.scores.score > bm + 3 * bs).mean()), 4),
    **({"null_mean": round(float(c.scores.null_score.mean()), 5),
        "null_std": round(float(c.scores.null_score.std()), 5),
        "frac_above_null_3sd": round(float((c.scores.score > c.scores.null_score.mean()
                                            + 3 * c.scores.null_score.std()).mean()), 4)}
       if "null_score" in c.scores else {}),
}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--kinds", default="q,k,v")
    ap.add_argument("--max-mb", type=int, default=256, help="source-factor cache budget")
    ap.add_argument("--null", default="gaussian", choices=("gaussian", "rotation"))
    ap.add_argument("--limit-mb", type=float, default=1024.0, help="fail above this peak RSS")
    args = ap.parse_args(argv)
    ok = True
    for kind in args.kinds.split(","):
        out = subprocess.run([sys.executable, "-c", CHILD, args.model, kind, str(args.max_mb),
                              args.null],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["pass"] = rec["peak_rss_mb"] < args.limit_mb
        ok &= rec["pass"]
        print(json.dumps(rec))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
