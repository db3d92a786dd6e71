"""Shared checks of a ``verdict.json`` (issue 16: every experiment writes one)."""

from __future__ import annotations

import json
import math

OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
       ">": lambda a, b: a > b}


def check_verdict(path, experiment: str, passed: bool) -> dict:
    """Schema, and that every ``pass`` is ``measured <comparison> threshold`` recomputed."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["experiment"] == experiment
    assert doc["criteria"], "no criteria"
    for c in doc["criteria"]:
        assert set(c) >= {"name", "measured", "threshold", "comparison", "pass"}, c
        m = c["measured"]
        want = m is not None and not math.isnan(m) and OPS[c["comparison"]](m, c["threshold"])
        assert c["pass"] is want, c
    assert doc["passed"] is all(c["pass"] for c in doc["criteria"])
    assert doc["passed"] is passed
    return doc


def check_one_run(folder, set_name: str, names) -> str:
    """The folder holds one committed run of ``set_name`` (``flagalign._output.verify``: the
    manifest's SHA-256 of every file matches) that lists ``names``; every CSV's ``run_id``
    column and ``verdict.json``'s ``run_id`` are the manifest's run id; no visible file of the
    folder was written outside the transaction. Returns the run id."""
    import json

    import pandas as pd

    from flagalign._output import manifest_name, verify

    info = verify(folder, set_name)
    run_id = info["run_id"]
    assert set(names) <= set(info["files"]), sorted(info["files"])
    csvs = [n for n in info["files"] if n.endswith(".csv")]
    assert csvs and "verdict.json" in info["files"]
    for n in csvs:
        col = pd.read_csv(folder / n)["run_id"]
        assert len(col) and (col == run_id).all(), n
    assert json.loads((folder / "verdict.json").read_text(encoding="utf-8"))["run_id"] == run_id
    visible = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert visible == set(info["files"]) | {manifest_name(set_name)}, visible
    return run_id
