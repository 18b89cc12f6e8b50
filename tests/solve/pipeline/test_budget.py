"""The budget planner on simulated stage timings: plans finish before the deadline, and a task slower
than planned cannot push the run past it (each task's own deadline is enforced by the pipeline)."""

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.budget import BudgetPlanner, task_cost


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
