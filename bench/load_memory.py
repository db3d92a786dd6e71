"""Peak memory of lazy loading: a ≥1 GB safetensors file, every matrix read one at a time.

Usage: python bench/load_memory.py [--gib 1.0] [--dir /tmp]

A child process writes the file (streamed, never all in memory); a second, fresh process loads it
with ``flagalign.load`` and reads every matrix once (``float(np.linalg.norm(net.matrix(n)))``, so
no reference is kept), recording RSS before iterating and the peak (``ru_maxrss``) after. The
target (issue 3) is peak − baseline ≤ ~2× the largest float32 tensor: ``Network.matrix`` returns
float64, i.e. exactly 2× a float32 tensor, and the reader adds only a 16 MiB chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time


def write(path: str, gib: float) -> dict:
    import numpy as np

    big, small = (8192, 8192), (4096, 8192)  # 256 MiB and 128 MiB float32
    shapes = [big, big]
    while sum(r * c * 4 for r, c in shapes) < gib * 2**30:
        shapes.append(small)
    header, off = {}, 0
    for i, shp in enumerate(shapes):
        n = shp[0] * shp[1] * 4
        header[f"layers.{i}.weight"] = {"dtype": "F32", "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for shp in shapes:
            for _ in range(shp[0] // 1024):
                f.write(rng.standard_normal((1024, shp[1]), dtype=np.float32).tobytes())
    return {"bytes": os.path.getsize(path), "largest": big[0] * big[1] * 4, "tensors": len(shapes)}


def measure(path: str) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    import flagalign

    with threadpool_limits(1):
        t0 = time.perf_counter()
        net = flagalign.load(path)
        t_load = time.perf_counter() - t0
        base = _rss()
        t0 = time.perf_counter()
        for name, info in net.matrices.items():
            if not info.derived:
                float(np.linalg.norm(net.matrix(name)))
        t_iter = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "baseline_rss": base,
        "peak_rss": peak,
        "load_s": t_load,
        "iterate_s": t_iter,
        "pairs": len(net.pairs),
    }


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--_role", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_path", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._role == "write":
        print(json.dumps(write(a._path, a.gib)))
        return 0
    if a._role == "measure":
        print(json.dumps(measure(a._path)))
        return 0
    path = os.path.join(a.dir, "flagalign_bench_1g.safetensors")
    try:
        w = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--_role", "write", "--_path", path, "--gib", str(a.gib)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        m = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--_role", "measure", "--_path", path],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    finally:
        if os.path.exists(path):
            os.remove(path)
    mib = 2**20
    extra = m["peak_rss"] - m["baseline_rss"]
    print(
        f"file: {w['bytes'] / mib:.0f} MiB, {w['tensors']} tensors, largest {w['largest'] / mib:.0f} MiB (float32)"
    )
    print(f"load(): {m['load_s']:.3f} s; read all matrices one at a time: {m['iterate_s']:.1f} s")
    print(
        f"RSS before iterating {m['baseline_rss'] / mib:.0f} MiB, peak {m['peak_rss'] / mib:.0f} MiB, "
        f"peak - baseline = {extra / mib:.0f} MiB = {extra / w['largest']:.2f} x largest tensor"
    )
    ok = extra <= 2.2 * w["largest"]
    print("PASS" if ok else "FAIL", "(target: <= ~2x the largest tensor above the interpreter)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
