"""Machine-readable outcome of an experiment: ``verdict.json`` (issue 16).

Every ``flagalign reproduce NAME`` run that uses this module writes::

    {"experiment": NAME, "quick": bool, "passed": bool, "seconds": float,
     "criteria": [{"name": str, "measured": float, "threshold": float, "comparison": "<=",
                   "pass": bool, "detail": str}, ...],
     "meta": {...}}

``pass`` is ``measured <comparison> threshold``; a NaN measurement fails. The thresholds are the
ones fixed in docs/results.md before the first full run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .._output import OutputFolder

__all__ = ["Criterion", "check", "write_verdict", "criteria_table", "frame_markdown"]

_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
        ">": lambda a, b: a > b}  # fmt: skip


@dataclass(frozen=True)
class Criterion:
    """One pass criterion: ``measured <comparison> threshold``."""

    name: str
    measured: float
    threshold: float
    comparison: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pass"] = d.pop("passed")
        m = d["measured"]
        d["measured"] = None if m is None or (isinstance(m, float) and math.isnan(m)) else m
        return d


def check(name: str, measured: float, comparison: str, threshold: float,
          detail: str = "") -> Criterion:  # fmt: skip
    """Evaluate ``measured <comparison> threshold`` (NaN fails)."""
    if comparison not in _OPS:
        raise ValueError(f"comparison must be one of {sorted(_OPS)}, got {comparison!r}")
    m = float(measured)
    ok = (not math.isnan(m)) and bool(_OPS[comparison](m, float(threshold)))
    return Criterion(name, m, float(threshold), comparison, ok, detail)


def write_verdict(out_dir, experiment: str, criteria: list[Criterion], *, quick: bool,
                  seconds: float, meta: dict | None = None) -> Path:  # fmt: skip
    """Write ``verdict.json`` into ``out_dir`` — a folder, or an open
    :class:`flagalign._output.OutputFolder` (then it is committed atomically with the run's other
    files and carries its run id); return its path."""
    doc = {"experiment": experiment, "quick": bool(quick),
           "passed": bool(criteria) and all(c.passed for c in criteria),
           "seconds": round(float(seconds), 1),
           "criteria": [c.to_dict() for c in criteria], "meta": meta or {}}  # fmt: skip
    if isinstance(out_dir, OutputFolder):
        return out_dir.write_json("verdict.json", doc, default=float)
    path = Path(out_dir) / "verdict.json"
    path.write_text(json.dumps(doc, indent=1, default=float, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def criteria_table(criteria: list[Criterion]) -> str:
    """Markdown table: criterion | measured | threshold | verdict | detail."""
    lines = ["| criterion | measured | threshold | verdict | detail |", "|---|---|---|---|---|"]
    for c in criteria:
        lines.append(f"| {c.name} | {_fmt(c.measured)} | {c.comparison} {_fmt(c.threshold)} | "
                     f"{'PASS' if c.passed else 'FAIL'} | {c.detail} |")  # fmt: skip
    return "\n".join(lines)


def frame_markdown(df) -> str:
    """A pandas DataFrame as a GitHub markdown table (numbers to 3 significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return _fmt(v)
        return str(v)

    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
