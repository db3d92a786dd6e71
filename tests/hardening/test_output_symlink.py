"""Nothing is written through a symlink planted in the output folder (issue 13: a planted
``pairs.csv -> ~/.bashrc`` was followed). An output name that is a symlink is replaced by a
regular file (the link's target is never opened); a symlinked lock file is refused (exit 2)."""

from __future__ import annotations

import os

import pytest
from _outputs import assert_one_run, write_model

from flagalign.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "g2")


def test_planted_output_symlinks_are_replaced_not_followed(model, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = {}
    out = tmp_path / "out"
    out.mkdir()
    for name in ("pairs.csv", "summary.json", "report.html", "heads.csv", "run-analyze.json"):
        t = outside / f"{name}.target"
        t.write_text(f"do not touch {name}\n")
        os.symlink(t, out / name)
        targets[t] = t.read_text()
    assert main(["analyze", model, "--out", str(out), "-q"]) == 0
    for t, text in targets.items():
        assert t.read_text() == text, f"{t} was written through a link"
    rid, names = assert_one_run(out)
    for name in names | {"run-analyze.json"}:
        assert not (out / name).is_symlink()


def test_stale_removal_does_not_follow_or_delete_a_planted_link(model, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", model, "--out", str(out), "-q"]) == 0
    assert (out / "heads.csv").is_file()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.unlink(out / "heads.csv")
    os.symlink(victim, out / "heads.csv")  # heads.csv is stale in the next run
    assert main(["analyze", model, "--out", str(out), "-q", "--no-heads"]) == 0
    assert victim.read_text() == "keep"
    assert_one_run(out)


def test_symlinked_lock_file_is_refused(model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.symlink(victim, out / ".flagalign.lock")
    capsys.readouterr()
    assert main(["analyze", model, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".flagalign.lock" in err and "--out" in err
    assert victim.read_text() == "keep" and os.listdir(out) == [".flagalign.lock"]


def test_a_planted_manifest_cannot_move_or_delete_files_outside(model, tmp_path):
    """A manifest is data from the folder: names with a separator (``../x``) make it invalid,
    so recovery neither renames a planted file out of the folder nor unlinks outside it."""
    import json

    out = tmp_path / "out"
    rid = "20260101T000000Z-0123456789ab"
    (out / f".flagalign-{rid}-..").mkdir(parents=True)
    (out / f".flagalign-{rid}-.." / "escaped.txt.tmp").write_text("planted")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "run-analyze.json").write_text(json.dumps({
        "format": "flagalign-output-manifest", "version": 1, "set": "analyze", "run_id": rid,
        "state": "committing", "files": {"../escaped.txt": {"sha256": "0", "bytes": 7}},
        "remove": ["../victim.txt"]}))
    assert main(["analyze", model, "--out", str(out), "-q"]) == 0
    assert not (tmp_path / "escaped.txt").exists() and victim.read_text() == "keep"
    assert (out / f".flagalign-{rid}-..").is_dir()  # not ours to remove: a folder
    (out / f".flagalign-{rid}-.." / "escaped.txt.tmp").unlink()
    (out / f".flagalign-{rid}-..").rmdir()
    assert_one_run(out)
