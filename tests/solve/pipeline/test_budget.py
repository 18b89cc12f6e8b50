"""The budget planner on simulated stage timings: plans finish before the deadline, and a task slower
than planned cannot push the run past it (each task's own deadline is enforced by the pipeline)."""

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.budget import BudgetPlanner, deadline_cut, observe_record, task_cost


def make_task(tid: str, side: int) -> Task:
    g = np.zeros((side, side), dtype=np.uint8)
    return Task(tid, (Pair(g, g), Pair(g, g)), (g,))


def simulate(planner: BudgetPlanner, tasks, step_s_per_unit, overhead_per_unit, slow_factor=None):
    """Run `lanes` lanes in simulated time; a task uses steps * step time + overhead, cut at its deadline."""
    lanes_free = [0.0] * planner.lanes
    finished, skipped = [], []
    for t in planner.order(tasks):
        lane = int(np.argmin(lanes_free))
        now = lanes_free[lane]
        budget = planner.allot(t, now)
        if budget is None:
            skipped.append(t.id)
            continue
        cost = task_cost(t)
        factor = (slow_factor or {}).get(t.id, 1.0)
        train = budget.steps * step_s_per_unit * cost * factor
        total = min(train + overhead_per_unit * cost * factor, budget.seconds)  # the cap kills a slow task
        planner.observe(t, total, min(train, total), budget.steps)
        lanes_free[lane] = now + total
        finished.append((t.id, now + total, budget))
    return finished, skipped, max(lanes_free)


@pytest.mark.parametrize("lanes", [1, 4])
def test_plan_finishes_before_deadline_and_shrinks_steps(lanes):
    tasks = [make_task(f"t{i:02d}", side) for i, side in enumerate([3, 5, 8, 10, 12, 15, 20, 25, 30] * 3)]
    total_cost = sum(task_cost(t) for t in tasks)
    # Configured 64 steps would need 4x the time available: the planner must scale down.
    step, over = 0.001, 0.01
    needed = total_cost * (64 * step + over) / lanes
    planner = BudgetPlanner(deadline=needed / 4, lanes=lanes, steps=64, min_task_s=0.0)
    finished, skipped, end = simulate(planner, tasks, step, over)
    assert end <= planner.deadline + 1e-9
    assert len(finished) + len(skipped) == len(tasks)
    later_steps = [b.steps for _, _, b in finished[lanes:]]  # the first `lanes` tasks run before any measurement
    assert later_steps and float(np.median(later_steps)) < 64, "steps were not scaled to fit"
    assert len(finished) >= len(tasks) * 0.8, "most tasks should still run"


def test_slow_task_cannot_push_past_deadline():
    tasks = [make_task(f"t{i}", 10) for i in range(10)]
    planner = BudgetPlanner(deadline=100.0, lanes=1, steps=32, min_task_s=0.0)
    finished, _, end = simulate(planner, tasks, 0.001, 0.01, slow_factor={"t3": 1000.0})
    assert end <= 100.0 + 1e-9
    for _, finish, budget in finished:
        assert finish <= budget.deadline + 1e-9


def test_largest_first_and_no_start_near_deadline():
    tasks = [make_task("small", 3), make_task("big", 30), make_task("mid", 10)]
    planner = BudgetPlanner(deadline=10.0, lanes=1, steps=8, min_task_s=5.0)
    assert [t.id for t in planner.order(tasks)] == ["big", "mid", "small"]
    assert planner.allot(tasks[0], now=6.0) is None, "less than min_task_s left: do not start"


def test_task_cap_limits_share():
    planner = BudgetPlanner(deadline=10_000.0, lanes=1, steps=8, task_cap_s=60.0)
    t = make_task("only", 5)
    planner.order([t])
    budget = planner.allot(t, now=0.0)
    assert budget is not None and budget.seconds == 60.0 and budget.deadline == 60.0


def record(status="ok", total=100.0, train=50.0, steps=50, ttt_stop="steps", **stage_flags):
    """A task record as the pipeline writes it, reduced to what the planner reads."""
    stages = {"ttt": {"seconds": train + 1.0, "train_seconds": train, "steps": steps, "stopped_by": ttt_stop},
              "induction": {"seconds": 1.0, **stage_flags}}
    return {"status": status, "seconds": total, "stages": stages}


@pytest.mark.parametrize(
    "rec, cut",
    [
        (record(), False),
        (record(status="deadline"), True),
        (record(ttt_stop="deadline"), True),
        (record(deadline_hit=True), True),
        (record(scoring_skipped=True), True),
        (record(status="failed"), False),
    ],
    ids=["ok", "task-deadline", "ttt-cut", "sampling-cut", "scoring-skipped", "failed"],
)
def test_deadline_cut(rec, cut):
    assert deadline_cut(rec) is cut


def planned_steps(records, train_fraction=1.0) -> int:
    """Steps planned for a fresh task (share: the 100 s cap) after the planner observed `records`."""
    tasks = [make_task(f"t{i}", 10) for i in range(len(records) + 1)]
    planner = BudgetPlanner(deadline=10_000.0, lanes=1, steps=1000, task_cap_s=100.0, train_fraction=train_fraction)
    planner.order(tasks)
    for t, rec in zip(tasks, records):
        planner.allot(t, 0.0)
        observe_record(planner, t, rec)
    return planner.allot(tasks[-1], 0.0).steps


UNCUT = record(total=100.0, train=50.0, steps=50)  # 1 s per step, 50 s of overhead
CUT = record(total=100.0, train=99.0, steps=99, ttt_stop="deadline")  # training ate the task: ~1 s "overhead"


@pytest.mark.parametrize(
    "records, fraction, steps",
    [
        ([UNCUT], 1.0, 50),  # share 100 s - 50 s overhead at 1 s/step
        ([UNCUT, CUT], 1.0, 50),  # the cut task's near-zero overhead is not learned (learned: median 25.5 s -> 74 steps)
        ([CUT], 1.0, 100),  # no uncut task yet: no overhead estimate, step time alone
        ([CUT], 0.3, 30),  # ... and the training fraction bounds it
        ([UNCUT], 0.3, 30),  # training may use only its fraction of the share even when more would fit
    ],
    ids=["uncut", "cut-ignored", "only-cut", "only-cut-fraction", "fraction-caps"],
)
def test_overhead_is_learned_only_from_uncut_tasks(records, fraction, steps):
    assert planned_steps(records, fraction) == steps
