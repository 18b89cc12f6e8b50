"""The run directory's guarantees with real processes: one writer (flock), no record lost to a write
torn by a kill, one config per directory, and every task id answered even when its task does not load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from augment.tasks import LoadIssue, Pair, Task
from solve.pipeline.rundir import (
    LOCK_ENV,
    TORN_NAME,
    ConfigMismatch,
    RunDir,
    RunDirLocked,
    config_diff,
    read_results,
)
from solve.pipeline.stages import failed_record
from solve.select.submission import validate_submission

ROOT = Path(__file__).resolve().parents[3]


def _task(tid: str, tests: int = 1) -> Task:
    g = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    return Task(tid, (Pair(g, g), Pair(g, g)), tuple(g + i for i in range(tests)))


def _rec(task: Task) -> dict:
    """A real finished-task record (placeholder attempts), as a placement would write it."""
    return failed_record(task, "worker", RuntimeError("stand-in result"))


def _python(code: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# --- 2. torn lines ---------------------------------------------------------------------------------

WRITER = """
    import json, os, signal, sys
    import numpy as np
    from augment.tasks import Pair, Task
    from solve.pipeline.rundir import RunDir
    from solve.pipeline.stages import failed_record
    g = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    tasks = [Task(t, (Pair(g, g), Pair(g, g)), (g,)) for t in ("a", "b", "c")]
    run = RunDir.open(sys.argv[1], tasks, None)
    run.record(failed_record(tasks[0], "worker", RuntimeError("stand-in result")))
    line = (json.dumps(failed_record(tasks[1], "worker", RuntimeError("stand-in result"))) + "\\n").encode()
    fd = os.open(run.results_path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, line[: len(line) // 2])  # the kill lands in the middle of b's line
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_line_torn_by_a_killed_writer_loses_no_record(tmp_path):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path)], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    raw = (tmp_path / "results.jsonl").read_bytes()
    assert not raw.endswith(b"\n")  # the torn line is really there

    tasks = [_task(t) for t in ("a", "b", "c")]
    run = RunDir.open(tmp_path, tasks, None)  # the resume repairs the tail first
    assert len(run.notes) == 1 and "torn" in run.notes[0] and TORN_NAME in run.notes[0]
    assert (tmp_path / TORN_NAME).read_bytes().startswith(b'{"task_id": "b"')
    assert set(run.done) == {"a"} and [t.id for t in run.pending()] == ["b", "c"]
    for t in run.pending():  # the resumed run finishes both; the next record is not glued onto anything
        run.record(_rec(t))
    recs = read_results(tmp_path / "results.jsonl")
    assert [r["task_id"] for r in recs] == ["a", "b", "c"]  # nothing lost
    assert (tmp_path / "results.jsonl").read_bytes().endswith(b"\n")
    sub = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sub, tasks) == []


def test_a_record_missing_only_its_newline_is_completed_not_cut(tmp_path):
    tasks = [_task("a"), _task("b")]
    (tmp_path / "results.jsonl").write_text(json.dumps(_rec(tasks[0])))  # a crash before the newline
    run = RunDir.open(tmp_path, tasks, None)
    assert set(run.done) == {"a"} and "completed" in run.notes[0]
    run.record(_rec(tasks[1]))
    assert [r["task_id"] for r in read_results(run.results_path)] == ["a", "b"]
    assert not (tmp_path / TORN_NAME).exists()


def test_a_record_glued_onto_an_old_torn_line_is_recovered(tmp_path):
    """Directories written before appends repaired torn tails can hold `<torn bytes><record>` lines."""
    a, b, c = (_rec(_task(t)) for t in "abc")
    torn = json.dumps(b)[:40]
    (tmp_path / "results.jsonl").write_text(json.dumps(a) + "\n" + torn + json.dumps(c) + "\n")
    assert [r["task_id"] for r in read_results(tmp_path / "results.jsonl")] == ["a", "c"]


def test_appends_are_single_whole_lines(tmp_path):
    tasks = [_task(f"t{i}") for i in range(20)]
    run = RunDir.open(tmp_path, tasks, None)
    for t in tasks:
        run.record(_rec(t))
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == [t.id for t in tasks]


# --- 4. the lock -----------------------------------------------------------------------------------

HOLDER = """
    import sys, time
    from solve.pipeline.rundir import RunDir
    run = RunDir.open(sys.argv[1], [], None)
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_process_is_refused_naming_the_directory_and_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunDirLocked) as info:
            RunDir.open(tmp_path, [_task("a")], None)
        msg = str(info.value)
        assert str(tmp_path.resolve()) in msg and f"pid {holder.pid}" in msg
        assert json.loads((tmp_path / "submission.json").read_text()) == {}  # the holder's; the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    run = RunDir.open(tmp_path, [_task("a")], None)  # the holder is gone: its lock went with it
    assert run.pending()


def test_the_lock_is_reentrant_in_a_process_and_refuses_others_until_released(tmp_path):
    first = RunDir.open(tmp_path, [_task("a")], None)
    second = RunDir.open(tmp_path, [_task("a")], None)  # the kernel and run_tasks open DIR in one process
    probe = f"from solve.pipeline.rundir import RunDir\nRunDir.open({str(tmp_path)!r}, [], None)\n"
    refused = _python(probe)
    assert refused.returncode != 0 and "RunDirLocked" in refused.stderr and f"pid {os.getpid()}" in refused.stderr
    first.close()
    assert _python(probe).returncode != 0  # still held by `second`
    # A process we launch may write DIR while we hold it for it (a deepspeed rank under our launcher).
    assert _python(probe, env=second.delegate_env()).returncode == 0
    assert LOCK_ENV in second.delegate_env()
    second.close()
    assert _python(probe).returncode == 0, "released when the last RunDir of DIR closes"


def test_cli_run_on_a_locked_directory_fails_with_a_clear_message(tmp_path):
    held = RunDir.open(tmp_path / "run", [], None)
    res = subprocess.run([sys.executable, "-m", "solve.cli.app", "run", "--out", str(tmp_path / "run"), "--config", "configs/smoke.yaml",
                          "--dataset", "arc-agi-1/evaluation", "--task-ids", "00576224", "--set", "model.source=random:tiny",
                          "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    out = " ".join((res.stdout + res.stderr).split())  # rich wraps long lines
    assert "is in use by another run" in out and f"pid {os.getpid()}" in out and str((tmp_path / "run").resolve()) in out
    held.close()


# --- 6. one config per directory --------------------------------------------------------------------


def test_resuming_with_another_config_is_refused_naming_the_keys(tmp_path):
    from solve.pipeline.runconfig import load_config

    base = load_config(ROOT / "configs" / "smoke.yaml", ["train.steps=3"]).model_dump(mode="json")
    other = load_config(ROOT / "configs" / "smoke.yaml", ["train.steps=4", "solve.temperature=0.5"]).model_dump(mode="json")
    recycled = load_config(ROOT / "configs" / "smoke.yaml", ["train.steps=3", "placement.recycle_every=5"]).model_dump(mode="json")
    assert config_diff(base, other) == ["solve.temperature", "train.steps"]
    tasks = [_task("a"), _task("b")]
    run = RunDir.open(tmp_path, tasks, base)
    saved = (tmp_path / "config.yaml").read_text()
    RunDir.open(tmp_path, tasks, other).close()  # no results yet: nothing would be mixed
    run = RunDir.open(tmp_path, tasks, base)
    run.record(_rec(tasks[0]))
    run.close()
    with pytest.raises(ConfigMismatch) as info:
        RunDir.open(tmp_path, tasks, other)
    msg = str(info.value)
    assert "train.steps: 3 saved, 4 now" in msg and "solve.temperature" in msg and str(tmp_path) in msg
    assert (tmp_path / "config.yaml").read_text() == saved  # not overwritten
    assert len(read_results(tmp_path / "results.jsonl")) == 1
    RunDir.open(tmp_path, tasks, recycled).close()  # recycling workers cannot change a result


# --- 1. every id answered ---------------------------------------------------------------------------


def test_tasks_that_do_not_load_are_recorded_failed_and_keep_placeholders(tmp_path):
    good = _task("good", tests=2)
    ragged = LoadIssue("f.json", "ragged", "train[0].input is ragged", (np.array([[5, 5]], np.uint8), None)).placeholder_task()
    nothing = LoadIssue("f.json", "nothing", "missing key 'test'").placeholder_task()
    tasks = [good, ragged, nothing]
    run = RunDir.open(tmp_path, tasks, None)
    assert [t.id for t in run.pending()] == ["good"]  # never handed to a placement
    recs = {r["task_id"]: r for r in read_results(run.results_path)}
    assert set(recs) == {"ragged", "nothing"}
    for tid in recs:
        assert recs[tid]["status"] == "failed" and recs[tid]["error"]["stage"] == "load"
    assert "train[0].input is ragged" in recs["ragged"]["error"]["message"] and "f.json" in recs["ragged"]["error"]["message"]
    assert recs["ragged"]["load"] == {"test_inputs": 2, "parsed": 1}
    sub = json.loads(run.submission_path.read_text())
    assert list(sub) == ["good", "ragged", "nothing"] and validate_submission(sub, tasks) == []
    assert sub["ragged"][0]["attempt_1"] == [[5, 5]] and sub["ragged"][1]["attempt_1"] == [[0]]
    assert len(sub["nothing"]) == 1
    run.close()

    # Reopened (a resume, or a deepspeed rank whose task list holds only the tasks that load): no
    # duplicate records, and the ids stay in the submission.
    again = RunDir.open(tmp_path, [good], None)
    assert set(json.loads(again.submission_path.read_text())) == {"good", "ragged", "nothing"}
    assert len(read_results(again.results_path)) == 2
    again.close()
    # The file was fixed: the task loads now, so its load failure is not final.
    fixed = RunDir.open(tmp_path, [good, _task("ragged")], None)
    assert [t.id for t in fixed.pending()] == ["good", "ragged"]
    assert validate_submission(json.loads(fixed.submission_path.read_text()), [good, _task("ragged"), nothing]) == []
