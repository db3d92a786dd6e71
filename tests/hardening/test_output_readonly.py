"""A read-only, full or unusable --out is exit 2 with one line naming --out, before computing
(issue 13: a read-only --out computed everything, then failed with exit 1)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from _outputs import assert_one_run, run_analyze, write_model

from flagalign.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "g2")


@pytest.fixture
def no_compute(monkeypatch):
    """Fails the test if analyze() is called (the check must come before computing)."""
    import flagalign.commands.analyze as cmd
    import flagalign.diagnostics as diag

    calls = []
    real = diag.analyze
    spy = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(diag, "analyze", spy)  # where the command may import it from
    if hasattr(cmd, "analyze"):
        monkeypatch.setattr(cmd, "analyze", spy)  # the name the command calls
    return calls


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder no file can be created in, even by root (chattr +i), else chmod 555."""
    d = tmp_path / "ro"
    d.mkdir()
    undo = None
    if os.geteuid() == 0 and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
            undo = ["chattr", "-i", str(d)]
    else:
        d.chmod(0o555)
    try:
        (d / "probe").touch()
        (d / "probe").unlink()
        pytest.skip("cannot make a read-only folder here")
    except OSError:
        pass
    yield d
    if undo:
        subprocess.run(undo, check=True)
    d.chmod(0o755)


def _one_line(err: str, *needles):
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_readonly_out_is_exit_2_before_computing(model, readonly_dir, no_compute, capsys):
    capsys.readouterr()
    rc = main(["analyze", model, "--out", str(readonly_dir), "-q"])
    _one_line(capsys.readouterr().err, "--out", str(readonly_dir), "not writable")
    assert rc == 2 and not no_compute
    r = run_analyze(model, readonly_dir)  # the real command line: exit 2, one line
    assert r.returncode == 2
    _one_line(r.stderr, "--out", "not writable")
    capsys.readouterr()  # a folder to create under a read-only one: the same, before computing
    rc = main(["analyze", model, "--out", str(readonly_dir / "sub"), "-q"])
    _one_line(capsys.readouterr().err, "--out", "cannot create")
    assert rc == 2 and not no_compute


def test_out_that_is_a_file_is_exit_2(model, tmp_path, no_compute, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    capsys.readouterr()
    assert main(["analyze", model, "--out", str(f), "-q"]) == 2
    _one_line(capsys.readouterr().err, "--out", "not a folder")
    assert f.read_text() == "x" and not no_compute


def test_full_disk_is_exit_2_before_computing(model, tmp_path, monkeypatch, no_compute, capsys):
    import flagalign._output.transaction as output

    real = os.statvfs
    monkeypatch.setattr(output.os, "statvfs",
                        lambda p: SimpleNamespace(f_bavail=3, f_frsize=4096, f_blocks=real(p).f_blocks))
    capsys.readouterr()
    assert main(["analyze", model, "--out", str(tmp_path / "out"), "-q"]) == 2
    _one_line(capsys.readouterr().err, "--out", "disk is full")
    assert not no_compute


def test_disk_full_while_writing_keeps_the_previous_set(model, tmp_path, monkeypatch, capsys):
    import flagalign._output.transaction as output

    out = tmp_path / "out"
    assert main(["analyze", model, "--out", str(out), "-q"]) == 0
    before, _ = assert_one_run(out)
    real = output._write_file

    def full(path, data):
        if "report.html" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(output, "_write_file", full)
    capsys.readouterr()
    assert main(["analyze", model, "--out", str(out), "-q", "--no-heads"]) == 2
    _one_line(capsys.readouterr().err, "--out", "disk is full", "previous files are unchanged")
    after, names = assert_one_run(out)
    assert after == before and "heads.csv" in names
