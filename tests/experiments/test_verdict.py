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


@pytest.mark.parametrize("passed, code", [(True, 0), (False, 3)])
def test_reproduce_exit_code_separates_a_failed_criterion_from_a_crash(monkeypatch, tmp_path,
                                                                        capsys, passed, code):
    """`flagalign reproduce` exits 0 when every criterion held and 3 when one failed — never 1,
    which the CLI keeps for internal errors (README: exit status)."""
    from flagalign.cli import main
    from flagalign.experiments import framework

    def runner(out, quick=False, progress=True):
        return framework.ExperimentResult("demo", "| c | PASS |", passed, [])

    monkeypatch.setitem(framework.EXPERIMENTS, "ridge", runner)
    assert main(["reproduce", "ridge", "--out", str(tmp_path), "--quiet"]) == code
    err = capsys.readouterr().err
    assert ("a pass criterion failed" in err) == (not passed)
