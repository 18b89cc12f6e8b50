"""per_gpu under faults, with real CPU worker processes and the tiny random model: a retry is charged
once by the budget planner, a hung worker is killed even without `run.task_timeout_s` (and one that
does not die at once is left behind, never waited for), and no worker outlives the run."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import solve.placement.per_gpu as per_gpu
from augment.tasks import Pair, Task, load_dataset, select
from solve.kernel.rehearse import processes_with_env
from solve.pipeline.budget import BudgetPlanner, task_cost
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import load_config
from solve.placement.gpu_worker import HANG_ENV, KILL_ENV
from solve.select.submission import validate_submission

ROOT = Path(__file__).resolve().parents[3]
TASK_IDS = ["00576224", "2072aba6", "31d5ba1a"]  # small grids: seconds per task on the tiny model
BASE = ["model.source=random:tiny", "train.steps=3"]
MARK = "ARC_TTT_TEST_MARK"  # inherited by every worker: finds what a run left running


@pytest.fixture(scope="module")
def tasks():
    return select(load_dataset("arc-agi-1/evaluation").tasks, TASK_IDS)


def _cfg(*extra: str):
    return load_config(ROOT / "configs" / "smoke.yaml", BASE + list(extra))


def _records(out: Path) -> dict[str, dict]:
    return {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _gone(marker: str, within_s: float = 10.0) -> list[int]:
    """Processes still carrying `marker` after waiting up to `within_s` for them to end."""
    until = time.monotonic() + within_s
    while (left := processes_with_env(MARK, marker)) and time.monotonic() < until:
        time.sleep(0.2)
    return left


def _grid_task(tid: str, side: int) -> Task:
    g = np.zeros((side, side), dtype=np.uint8)
    return Task(tid, (Pair(g, g),), (g,))


def test_planner_charges_a_requeued_task_once():
    """A task whose worker died is re-queued: its retry's allot must see the same remaining cost as a
    first start would, and later tasks the same shares as if nothing had failed."""
    a, b, c = _grid_task("a", 9), _grid_task("b", 6), _grid_task("c", 4)
    clean, faulty = (BudgetPlanner(deadline=1000.0, lanes=1, steps=8) for _ in range(2))
    for p in (clean, faulty):
        p.order([a, b, c])
    first = faulty.allot(a, 0.0)
    faulty.requeue(a)  # its worker died at once
    assert faulty.running == {} and faulty.pending_cost == clean.pending_cost
    retry, expected = faulty.allot(a, 0.0), clean.allot(a, 0.0)
    assert retry.seconds == pytest.approx(expected.seconds) == pytest.approx(first.seconds)
    clean.observe(a, 1.0, 0.0, 0)
    faulty.observe(a, 1.0, 0.0, 0)
    share_b = faulty.allot(b, 1.0).seconds
    assert share_b == pytest.approx(clean.allot(b, 1.0).seconds)
    assert share_b == pytest.approx(999.0 * task_cost(b) / (task_cost(b) + task_cost(c)))
    faulty.requeue(c)  # never started: nothing to give back
    assert faulty.pending_cost == pytest.approx(task_cost(c))


@pytest.mark.slow
def test_per_gpu_retry_is_charged_once(tasks, tmp_path, monkeypatch):
    """One worker, a global deadline, no task cap: the largest task's worker dies on its first try.
    Each share (the retry's included) is at most the task's cost-fraction of the time left, as the
    planner promises; charging the retry twice gave it, and the task after it, all the time left."""
    order = [t.id for t in sorted(tasks, key=lambda t: (-task_cost(t), t.id))]
    cost = {t.id: task_cost(t) for t in tasks}
    monkeypatch.setenv(KILL_ENV, f"{order[0]}@1")
    cfg = _cfg("placement.mode=per_gpu", "placement.workers=1", "run.task_timeout_s=null")
    total_s = 1000.0
    planner = BudgetPlanner.for_run(cfg, time.monotonic() + total_s, 1)
    per_gpu.run_per_gpu(cfg, tasks, RunOptions(out=tmp_path, global_deadline_s=total_s, progress=False), Console(quiet=True),
                        planner=planner)
    recs = _records(tmp_path)
    assert recs[order[0]]["tries"] == 2 and all(r["status"] == "ok" for r in recs.values()), [r.get("error") for r in recs.values()]
    for i, tid in enumerate(order[:2]):  # the retried task, then the next one
        fraction = cost[tid] / sum(cost[t] for t in order[i:])
        assert recs[tid]["plan"]["seconds"] <= total_s * fraction + 1.0, (tid, recs[tid]["plan"], fraction)
    assert planner.running == {} and planner.pending_cost == pytest.approx(0.0)
    assert validate_submission(json.loads((tmp_path / "submission.json").read_text()), tasks) == []


@pytest.mark.slow
def test_hung_worker_without_task_timeout_is_killed_and_nothing_outlives_the_run(tasks, tmp_path, monkeypatch):
    """run.task_timeout_s unset and no global deadline: the default cap still kills a worker hung in
    its task (it ignores SIGTERM, as one stuck in a CUDA call does). With KILL_WAIT_S=0 every killed
    worker looks like one the kernel cannot end at once: it is left behind, never joined, a new worker
    takes over, and the run still ends. The task is retried once, then recorded failed; the other
    task is solved; no worker process is left when the run returns."""
    hung, fine = TASK_IDS[:2]
    marker = uuid.uuid4().hex
    monkeypatch.setenv(HANG_ENV, hung)
    monkeypatch.setenv(MARK, marker)
    monkeypatch.setattr(per_gpu, "DEFAULT_TASK_CAP_S", 6.0)
    monkeypatch.setattr(per_gpu, "KILL_WAIT_S", 0.0)
    cfg = _cfg("placement.mode=per_gpu", "placement.workers=2", "run.task_timeout_s=null")
    assert cfg.run.task_timeout_s is None
    console = Console(record=True, width=300)
    start = time.monotonic()
    per_gpu.run_per_gpu(cfg, tasks[:2], RunOptions(out=tmp_path, progress=False), console, watchdog_margin_s=1.0)
    assert time.monotonic() - start < 240
    recs = _records(tmp_path)
    assert recs[hung]["status"] == "failed" and recs[hung]["tries"] == 2 and recs[hung]["error"]["stage"] == "worker"
    assert "killed by the watchdog" in recs[hung]["error"]["message"]
    assert recs[fine]["status"] == "ok"
    assert validate_submission(json.loads((tmp_path / "submission.json").read_text()), tasks[:2]) == []
    assert "left behind" in console.export_text()
    assert _gone(marker) == []
    assert not per_gpu._live, "every worker of the run was reaped"


@pytest.mark.parametrize("workers, configured, expected", [(4, 0, "cores/4"), (2, 0, "cores/2"), (4, 3, 3)])
def test_sandbox_pools_share_the_cores_among_workers(workers, configured, expected):
    """sandbox.workers=0 means one per core for the whole machine, not per GPU worker (4x oversubscribed)."""
    from solve.pipeline.runconfig import load_config
    from solve.placement import per_gpu

    cfg = load_config(None, [f"sandbox.workers={configured}"])
    slots = [per_gpu.Slot(i, "cpu", 1) for i in range(workers)]
    pool = per_gpu._Pool(cfg, None, None, None, slots, None, 0.0, None)
    want = expected if isinstance(expected, int) else max(1, per_gpu._cores() // workers)
    assert pool.cfg_data["sandbox"]["workers"] == want
    assert cfg.sandbox.workers == configured  # the recorded config is unchanged
