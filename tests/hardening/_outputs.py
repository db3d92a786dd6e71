"""Shared helpers of the output-folder hardening tests (issue 13, "Output is written atomically
and only where asked"): a tiny model with attention heads, the CLI in a child process, and an
independent check that a folder holds exactly one complete run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
#: What analyze writes for the tiny model (heads.csv only with the heads analysis).
ANALYZE_FILES = {"pairs.csv", "summary.json", "report.html"}


def write_model(folder) -> str:
    """A 2-layer GPT-2-style folder (d 16, 4 heads) with random weights: analyze takes ~1 s of
    compute and writes pairs.csv, heads.csv, summary.json and report.html."""
    from flagalign.models.synthetic import gpt2_tensors, write_folder

    t, cfg = gpt2_tensors(np.random.default_rng(0))
    return write_folder(folder, t, cfg)


def child_env() -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def analyze_cmd(model, out, *extra) -> list[str]:
    return [sys.executable, "-m", "flagalign", "analyze", str(model), "--out", str(out), "-q",
            *map(str, extra)]


def run_analyze(model, out, *extra, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(analyze_cmd(model, out, *extra), capture_output=True, text=True,
                          env=child_env(), timeout=timeout)


def embedded_run_id(path: Path) -> str:
    """The run id written inside one output file, read the way a user would (independently of
    flagalign): the run_id column of a CSV (one value for every row), the run_id key of
    summary.json, the "run id" entry of the report header, the text chunk of a PNG."""
    name = path.name
    if name.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        ids = {r["run_id"] for r in rows}
        assert len(ids) == 1, (path, ids)
        assert all(None not in r for r in rows), f"{path}: a row has extra cells (torn file?)"
        return ids.pop()
    if name.endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))["run_id"]
    if name.endswith(".html"):
        text = path.read_text(encoding="utf-8")
        assert text.rstrip().endswith("</html>"), f"{path}: truncated report"
        head = text.split("<dt>run id</dt><dd>", 1)
        assert len(head) == 2, f"{path}: no run id in the report header"
        return head[1].split("<", 1)[0]
    if name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            return im.text["flagalign-run-id"]
    raise AssertionError(f"unexpected output {path}")


def assert_one_run(out, set_name: str = "analyze") -> tuple[str, set]:
    """``out`` holds exactly one complete run of ``set_name`` at the files' own names: the
    manifest's run id is every file's embedded run id, every file parses, nothing else of
    flagalign's is there (no other run's file of that set, no temporary file). Returns
    (run id, file names)."""
    out = Path(out)
    man = json.loads((out / f"run-{set_name}.json").read_text())
    rid, names = man["run_id"], set(man["files"])
    for n in names:
        p = out / n
        assert p.is_file() and not p.is_symlink(), p
        assert embedded_run_id(p) == rid, (p, rid)
    leftovers = [n for n in os.listdir(out) if n.startswith(".flagalign-")]
    assert not leftovers, leftovers
    return rid, names
