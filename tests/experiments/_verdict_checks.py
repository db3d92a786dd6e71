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
