"""flagalign.experiments.verdict: criteria evaluation and the verdict.json schema."""

from __future__ import annotations

import math

import pytest
from _verdict_checks import check_verdict

from flagalign.experiments.verdict import check, criteria_table, write_verdict


def test_check_comparisons_and_nan_fails():
    assert check("a", 0.1, "<=", 0.1).passed
    assert not check("a", 0.1000001, "<=", 0.1).passed
    assert check("b", 2, ">", 1).passed and not check("b", 1, ">", 1).passed
    assert not check("n", math.nan, "<=", 1.0).passed
    assert not check("n", math.nan, ">=", -1.0).passed
    with pytest.raises(ValueError):
        check("x", 1.0, "==", 1.0)


def test_write_verdict_roundtrip(tmp_path):
    crit = [check("ok", 0.01, "<=", 0.05, "d"), check("bad", math.nan, ">=", 0.2)]
    p = write_verdict(tmp_path, "demo", crit, quick=True, seconds=1.234, meta={"k": (1, 2)})
    doc = check_verdict(p, "demo", passed=False)
    assert doc["criteria"][1]["measured"] is None and doc["quick"] is True
    assert "| ok | 0.01 | <= 0.05 | PASS | d |" in criteria_table(crit)
