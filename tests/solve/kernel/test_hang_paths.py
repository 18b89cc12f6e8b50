"""The Kaggle kernel always ends, on time, with a complete valid submission, whatever its per_gpu
workers do: hang in a task (ignoring SIGTERM, as in a stuck CUDA call), die, or the orchestration in
the main process raises. Real worker processes on CPU with the tiny random model."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from solve.kernel.main import START_ENV, main
from solve.kernel.rehearse import build_fake_kaggle, check, kernel_argv, processes_with_env, run_kernel
from solve.pipeline.budget import task_cost
from solve.pipeline.rundir import read_results
from solve.placement.gpu_worker import HANG_ENV, KILL_ENV
from solve.placement.per_gpu import ORCHESTRATION_FAULT_ENV

PER_GPU = ["placement.mode=per_gpu", "placement.workers=2"]
MARK = "ARC_TTT_TEST_MARK"  # inherited by the kernel and its workers: finds what it left running


def _left_running(marker: str, within_s: float = 10.0) -> list[int]:
    until = time.monotonic() + within_s
    while (left := processes_with_env(MARK, marker)) and time.monotonic() < until:
        time.sleep(0.2)
    return left


@pytest.mark.slow  # minutes-long subprocess or many tiny runs: CI runs it, the inner loop does not
def test_orchestration_failure_is_resumed_once(tmp_path, small_tasks, config, fast, monkeypatch, capsys):
    """The main process raises while handing out a task (once): the kernel resumes the run from its
    directory and finishes every task; no task is lost and none is recorded twice."""
    fake = build_fake_kaggle(tmp_path, small_tasks[:2], "random:tiny")
    first = min(small_tasks[:2], key=lambda t: (-task_cost(t), t.id))  # the planner hands out the largest first
    monkeypatch.setenv(ORCHESTRATION_FAULT_ENV, first.id)
    marker = uuid.uuid4().hex
    monkeypatch.setenv(MARK, marker)
    argv = kernel_argv(fake, config, 600, 0, [*fast, *PER_GPU], ["--no-watchdog", "--min-start-s", "5"])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "OrchestrationFault" in out and "resuming it" in out
    recs = read_results(fake.working / "results.jsonl")
    assert sorted(r["task_id"] for r in recs) == sorted(t.id for t in small_tasks[:2])  # each exactly once
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    r = check(fake, 0, out, 0.0)
    assert r.problems == []
    assert _left_running(marker) == []


@pytest.mark.slow
def test_kernel_ends_on_time_with_a_hung_and_a_dying_worker(tmp_path, small_tasks, config, fast):
    """Three tasks on two per_gpu workers: one hangs forever, one kills its worker on every try, one is
    fine. The dying task is retried, then recorded failed; the fine one is solved; the hung one holds
    its worker past the deadline, so the watchdog stops the kernel at deadline + grace: it kills the
    workers (they would keep the notebook's output pipe open) and exits 124. The kernel's output pipe
    closes (run_kernel reads it to EOF), no process of it is left, the submission is complete."""
    tasks = small_tasks[:3]
    hung, dies, fine = (t.id for t in tasks)
    fake = build_fake_kaggle(tmp_path, tasks, "random:tiny")
    deadline_s, grace_s = 75.0, 10.0
    argv = kernel_argv(fake, config, deadline_s, 0, [*fast, *PER_GPU], ["--hard-stop-s", str(grace_s), "--min-start-s", "5"])
    marker = uuid.uuid4().hex
    started = time.time()
    env = {START_ENV: repr(started), HANG_ENV: hung, KILL_ENV: dies, MARK: marker}
    rc, output, wall = run_kernel(argv, timeout_s=deadline_s + grace_s + 120, env=env)
    ended = time.time()
    assert rc == 124 and "watchdog: hard stop" in output, output[-3000:]
    assert ended - started <= deadline_s + grace_s + 10, "the kernel ended at its hard stop"
    assert _left_running(marker) == []
    r = check(fake, rc, output, wall)
    assert r.problems == []  # complete and valid: the hung task keeps its placeholders
    recs = {rec["task_id"]: rec for rec in read_results(fake.working / "results.jsonl")}
    assert recs[dies]["status"] == "failed" and recs[dies]["tries"] == 2 and "SIGKILL" in recs[dies]["error"]["message"]
    assert recs[fine]["status"] == "ok"
    assert hung not in recs  # in flight at the hard stop: placeholders, retried by a restart
    sub = json.loads((fake.working / "submission.json").read_text())
    assert sub[hung][0]["attempt_1"] == tasks[0].test_inputs[0].tolist()
