"""Two runs on one output folder leave one complete set (issue 13: two runs on the same --out
left summary.json of one model beside report.html of another).

The folder's lock (``.flagalign.lock``, fcntl.flock) is taken before computing; a second run
on a folder in use stops at once with exit 2 and one line saying so (it never waits)."""

from __future__ import annotations

import subprocess

import pytest
from _outputs import (ANALYZE_FILES, analyze_cmd, assert_one_run, child_env, run_analyze,
                      write_model)

from flagalign.errors import InputError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "g2")


def test_two_concurrent_analyze_leave_one_complete_set(model, tmp_path):
    out = tmp_path / "out"
    assert run_analyze(model, out).returncode == 0  # an existing set to replace
    for attempt in range(2):
        procs = [subprocess.Popen(analyze_cmd(model, out, *extra), env=child_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for extra in ([], ["--no-heads"])]
        results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert any(rc == 0 for rc, _ in results), results
        for rc, err in results:
            assert rc in (0, 2), err
            if rc == 2:
                assert err.count("\n") == 1 and "another flagalign run" in err and "--out" in err
        rid, names = assert_one_run(out)
        assert names in (ANALYZE_FILES, ANALYZE_FILES | {"heads.csv"})


def test_a_held_folder_is_refused_before_computing(model, tmp_path, monkeypatch, capsys):
    import flagalign.commands.analyze as cmd
    import flagalign.diagnostics as diag
    from flagalign._output import OutputFolder
    from flagalign.cli import main

    calls = []
    real = diag.analyze
    spy = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(diag, "analyze", spy)
    if hasattr(cmd, "analyze"):
        monkeypatch.setattr(cmd, "analyze", spy)
    out = tmp_path / "out"
    with OutputFolder(out, set_name="other"):
        with pytest.raises(InputError, match="another flagalign run"):
            OutputFolder(out).open()
        capsys.readouterr()
        rc = main(["analyze", model, "--out", str(out), "-q"])
        err = capsys.readouterr().err
    assert rc == 2 and "another flagalign run" in err and not calls
    assert main(["analyze", model, "--out", str(out), "-q"]) == 0 and calls  # lock released
    assert_one_run(out)
