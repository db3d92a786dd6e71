"""``flagalign compare --threads``: pinned by default, validated like every CLI number."""

import numpy as np
import pandas as pd
import pytest

from flagalign.cli import main


def _checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    a = {"l1.weight": rng.standard_normal((12, 9)), "l2.weight": rng.standard_normal((4, 12))}
    b = {n: w + 0.05 * rng.standard_normal(w.shape) for n, w in a.items()}
    pa, pb = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(pa, **a)
    np.savez(pb, **b)
    return str(pa), str(pb)


def test_compare_threads_option(tmp_path, capsys):
    a, b = _checkpoints(tmp_path)
    assert main(["compare", a, b, "--out", str(tmp_path / "one")]) == 0
    assert main(["compare", a, b, "--out", str(tmp_path / "two"), "--threads", "2"]) == 0
    one = pd.read_csv(tmp_path / "one" / "compare.csv").drop(columns="run_id")  # differs per run
    two = pd.read_csv(tmp_path / "two" / "compare.csv").drop(columns="run_id")
    assert len(one) == 2
    pd.testing.assert_frame_equal(one, two, rtol=1e-10)


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_compare_rejects_bad_threads(tmp_path, capsys, bad):
    a, b = _checkpoints(tmp_path)
    assert main(["compare", a, b, "--threads", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert "--threads" in err and "Traceback" not in err and len(err.splitlines()) == 1
