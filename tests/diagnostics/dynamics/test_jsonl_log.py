"""The JSONL training log (diagnostics.dynamics.log): resumable after a kill."""

import json


def test_resumed_log_after_kill_stays_readable(tmp_path):
    from flagalign.diagnostics.dynamics import JsonlLog, read_log

    path = tmp_path / "run.jsonl"
    with JsonlLog(path, {"run": 1}) as log:
        log.append(1, {"a -> b": {"imbalance_abs": 1.0}}, k={"a -> b": 3})
        log.append(2, {"a -> b": {"imbalance_abs": 0.5}})
    with open(path, "a") as fh:  # a SIGKILL mid-write leaves half a line
        fh.write('{"type":"record","step":3,"val')
    with JsonlLog(path, {"run": 2}) as log:
        log.append(4, {"a -> b": {"imbalance_abs": 0.25}})
    meta, records = read_log(path)
    assert [r["step"] for r in records] == [1, 2, 4]
    assert records[0]["k"] == {"a -> b": 3}  # JSON, not a Python repr string
    first = json.loads(path.read_text().splitlines()[1])
    assert first["k"] == {"a -> b": 3}
