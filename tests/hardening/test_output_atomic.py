"""Outputs are one atomic run: a kill at any moment leaves a complete old or a complete new set,
and files of the previous run that this run does not produce are removed.

Issue 13: pairs.csv, summary.json and report.html were truncated and rewritten in place (a kill
left a torn report or a mix of two runs) and a stale heads.csv of an earlier run stayed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from _outputs import (ANALYZE_FILES, analyze_cmd, assert_one_run, child_env, run_analyze,
                      write_model)



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "g2")


def test_kill_at_random_moments_leaves_one_complete_run(model, tmp_path):
    """SIGKILL ``analyze`` at 12 seeded random moments over an existing output folder (runs
    alternate with and without the heads analysis, so consecutive sets differ by heads.csv).
    After every kill the folder, read as is, holds one complete run (verify: every file's
    SHA-256 matches the committed manifest), and after the recovery every later run does first,
    every file at its own name carries that run id; it is the previous run or the killed one
    (if it had committed)."""
    from flagalign._output import recover, verify

    out = tmp_path / "out"
    times = []
    for extra in (["--no-heads"], []):  # the second (warm) run times a run; both must commit
        t0 = time.perf_counter()
        r = run_analyze(model, out, *extra)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
    full = min(times)
    prev, names = assert_one_run(out)
    assert names == ANALYZE_FILES | {"heads.csv"}
    rng = np.random.default_rng(13)
    seen = {"old": 0, "new": 0}
    killed = 0
    for i in range(12):
        extra = ["--no-heads"] if i % 2 == 0 else []
        p = subprocess.Popen(analyze_cmd(model, out, *extra), env=child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.05) * full)  # most of a run is start-up, then compute+write
        p.send_signal(signal.SIGKILL)
        killed += p.wait(timeout=60) == -signal.SIGKILL
        # read-only check first: the committed run is complete (resolving a commit in flight)
        v = verify(out)  # raises unless every file of the committed run is intact
        recover(out)  # what the next flagalign run on the folder does before anything else
        rid, names = assert_one_run(out)
        assert rid == v["run_id"]
        if rid == prev:
            seen["old"] += 1
        else:
            seen["new"] += 1
            assert names == ANALYZE_FILES | (set() if extra else {"heads.csv"})
            prev = rid
        present = {n for n in os.listdir(out) if not n.startswith(".") and n != "run-analyze.json"}
        assert present == names, f"kill {i}: stale or missing files {present ^ names}"
    assert seen["old"] + seen["new"] == 12
    assert killed >= 3, f"only {killed} of 12 runs were still running when killed"


def test_stale_heads_csv_is_removed_and_foreign_files_kept(model, tmp_path):
    out = tmp_path / "out"
    assert run_analyze(model, out).returncode == 0
    assert (out / "heads.csv").is_file()
    (out / "notes.txt").write_text("mine")  # a file flagalign did not write
    r = run_analyze(model, out, "--no-heads")
    assert r.returncode == 0, r.stderr
    assert not (out / "heads.csv").exists()
    assert (out / "notes.txt").read_text() == "mine"
    rid, names = assert_one_run(out)
    assert names == ANALYZE_FILES
    # the run id is a plain last column (no comment lines), the same in every row
    df = pd.read_csv(out / "pairs.csv")
    assert list(df.columns)[-2:] == ["schema_version", "run_id"] and (df.run_id == rid).all()
    assert not any(line.startswith("#") for line in (out / "pairs.csv").read_text().splitlines())


def _transaction(folder, files: dict, set_name="s"):
    from flagalign._output import OutputFolder

    with OutputFolder(folder, set_name=set_name) as tx:
        for name, text in files.items():
            tx.write_csv(name, pd.DataFrame({"x": [text] * 3}))
    return tx.run_id


class _Crash:
    """Stands in for ``os`` inside :mod:`flagalign._output.transaction` in a forked child: the ``n``-th
    mutating call (write, fsync, rename, unlink) kills the process (``os._exit``, no cleanup);
    a write writes half its bytes first."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in ("write", "fsync", "replace", "unlink"):
            return real

        def call(*args):
            self.calls += 1
            if self.calls == self.n:
                if name == "write":
                    os.write(args[0], bytes(args[1])[: len(args[1]) // 2])
                os._exit(137)
            return real(*args)

        return call


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_crash_at_every_step_of_a_commit(tmp_path, monkeypatch):
    """Deterministic complement of the kill test: kill the writer before each of its mutating
    system calls in turn (the commit window included, which random kills rarely hit). After each
    crash verify() sees the old or the new run complete, and after recover() the folder holds it
    at the files' own names."""
    import flagalign._output.transaction as mod
    from flagalign._output import recover, verify

    old = {"a.csv": "old-a", "b.csv": "old-b", "gone.csv": "old-gone"}
    new = {"a.csv": "new-a", "b.csv": "new-b", "c.csv": "new-c"}
    n, outcomes = 0, set()
    while True:
        n += 1
        folder = tmp_path / f"f{n}"
        old_id = _transaction(folder, old)
        pid = os.fork()
        if pid == 0:  # child: crash at the n-th call
            code = 3
            try:
                monkeypatch.setattr(mod, "os", _Crash(n))
                _transaction(folder, new)
                code = 0  # got through: no crash at call n
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code in (0, 137), f"child failed at step {n} (exit {code})"
        crashed = code == 137
        v = verify(folder, "s")
        recover(folder)
        rid, names = assert_one_run(folder, "s")
        assert rid == v["run_id"]
        want = old if rid == old_id else new
        assert names == set(want)
        for name, text in want.items():
            assert (pd.read_csv(folder / name).x == text).all()
        outcomes.add("old" if rid == old_id else "new")
        if not crashed:
            break
        assert n < 200
    assert outcomes == {"old", "new"} and n > 10


def test_an_error_before_commit_keeps_the_old_set(tmp_path):
    from flagalign._output import OutputFolder

    old_id = _transaction(tmp_path, {"a.csv": "old"})
    with pytest.raises(RuntimeError):
        with OutputFolder(tmp_path, set_name="s") as tx:
            tx.write_csv("a.csv", pd.DataFrame({"x": ["new"]}))
            raise RuntimeError("interrupted")
    rid, names = assert_one_run(tmp_path, "s")
    assert rid == old_id and names == {"a.csv"}


def test_sets_share_a_folder_without_removing_each_other(tmp_path):
    _transaction(tmp_path, {"a.csv": "1"}, set_name="one")
    _transaction(tmp_path, {"b.csv": "2"}, set_name="two")
    _transaction(tmp_path, {"a2.csv": "1"}, set_name="one")  # replaces set one only
    assert not (tmp_path / "a.csv").exists() and (tmp_path / "b.csv").exists()
    assert_one_run(tmp_path, "one")
    assert_one_run(tmp_path, "two")
