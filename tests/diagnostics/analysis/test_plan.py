"""AnalysisPlan: shared by describe and analyze, bounded --layers, picklable tasks."""

import pickle
import time

import numpy as np
import pandas as pd
import pytest

from flagalign import analyze
from flagalign.cli import main
from flagalign.diagnostics.analysis import make_plan, parse_layers
from flagalign.diagnostics.analysis.measure import measure_task
from flagalign.diagnostics.analysis.store import matrix_factors
from flagalign.errors import InputError
from flagalign.models import Network


def _net(depth=4, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return Network.from_arrays({f"layers.{i}.weight": rng.standard_normal((n, n))
                                for i in range(depth)})


def test_layers_bounded_by_depth_without_expanding_the_range():
    net = _net()
    t0 = time.perf_counter()
    for text in ("0-50000000", "0-99999999999", "2-99999999999999999999"):
        with pytest.raises(InputError, match="pair depths are 0-2"):
            make_plan(net, layers=text)
    assert time.perf_counter() - t0 < 1.0  # nothing of the range's size is built
    assert [t.depth for t in make_plan(net, layers="1-2").pairs] == [1, 2]
    with pytest.raises(InputError, match="0-2"):
        parse_layers("0-99999999999", (0, 2))


def test_cli_layers_out_of_range_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "m.npz"
    np.savez(path, **{f"layers.{i}.weight": np.eye(8) + i for i in range(3)})
    rc = main(["analyze", str(path), "--layers", "0-99999999999", "--out", str(tmp_path / "o"),
               "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pair depths are 0-1" in err[0]


def test_describe_and_analyze_share_the_plan():
    net = _net(5, 40)
    plan = make_plan(net, k=None, method="auto")
    an = analyze(net, progress=False, heads=False)
    assert [t.pair.name for t in plan.pairs] == an.pairs["pair"].tolist()
    assert all(row["k"] <= t.k_bound for row, t in zip(an.pairs.to_dict("records"), plan.pairs))
    from flagalign.commands.describe import plan_rows

    assert [r["k"] for r in plan_rows(net)] == [t.k_bound for t in plan.pairs]


def test_tasks_are_picklable_pure_functions_of_plan_entry_and_factors():
    net = _net(3, 16, seed=4)
    an = analyze(net, progress=False, heads=False)
    plan = pickle.loads(pickle.dumps(make_plan(net)))
    task = plan.pairs[0]
    W, Wn = net.matrix(task.pair.left), net.matrix(task.pair.right)
    left = pickle.loads(pickle.dumps(matrix_factors(plan.matrices[task.pair.left], W)))
    right = pickle.loads(pickle.dumps(matrix_factors(plan.matrices[task.pair.right], Wn)))
    row, table, _ = measure_task(task, W, Wn, left, right)
    ref = an.pairs.iloc[0].to_dict()
    for c, v in row.items():
        if c == "seconds":
            continue
        if isinstance(v, float):  # NaN (a column that does not apply, e.g. product_rank) = NA
            r = float("nan") if ref[c] is None or ref[c] is pd.NA else float(ref[c])
            assert v == pytest.approx(r, rel=1e-12, abs=1e-15, nan_ok=True), c
        else:
            assert v == ref[c], c
    np.testing.assert_array_equal(table, an.flag_tables[task.pair.name])


def test_flags_is_a_deprecated_alias_of_flag_tables():
    an = analyze(_net(), progress=False, heads=False)
    with pytest.warns(DeprecationWarning, match="flag_tables"):
        assert an.flags is an.flag_tables
