"""Fitting a run into a global deadline (the Kaggle kernel's 12 hours).

How it works:
- Cost of a task = the tokens of one training sample, estimated from its grid cells. Training and
  generation time grow with it, so it is the unit in which time is measured and shared.
- Order: largest tasks first (longest-processing-time first). Large tasks then start while time is
  plentiful, and the end of the run is made of small tasks that finish quickly, so no long task
  straddles the deadline and parallel lanes finish at about the same time.
- Share: each task gets lane-time in proportion to its cost out of what is not yet committed:
  `(lanes * (deadline - now) - time still promised to running tasks) * cost / cost_not_started`,
  capped by `task_cap_s`. Small tasks are not
  starved by large ones: every task's share is computed from the remaining tasks, not first come
  first served. Unused time of a fast task flows to the tasks after it.
- Sizing: seconds per training step per cost unit and the non-training overhead per cost unit are
  measured from finished tasks; the planned steps are the configured steps scaled down so that
  overhead + steps x step time fits the share and training fits its part of the share
  (`run.ttt_time_fraction`, which the pipeline enforces as training's deadline), never below
  `min_steps`, never above configured.
- What is learned: step time from every task that trained (it is measured per step, so a cut run
  measures it as well as a full one); overhead only from tasks no deadline cut short
  (`deadline_cut`). A cut task's overhead is whatever was left when time ran out, often near zero;
  learning it would plan full training again and cut the next task the same way.
- Hard limits: a task's deadline is never past its cap or the global deadline. When the time left
  is below `min_task_s` the planner stops starting tasks; they keep placeholder attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from augment.tasks import Task


def task_cost(task: Task) -> float:
    """Approximate tokens of one leave-one-out sample: one per cell plus one per row, all grids."""
    grids = [g for p in task.train for g in (p.input, p.output)] + list(task.test_inputs)
    return float(sum(g.shape[0] * (g.shape[1] + 1) for g in grids))


@dataclass(frozen=True)
class TaskBudget:
    seconds: float  # wall-clock share for the whole task
    deadline: float  # absolute (same clock as `now`), never past the task cap or the global deadline
    steps: int  # training steps to run
    reason: str  # how the numbers were chosen, for the timeline


@dataclass
class BudgetPlanner:
    deadline: float  # absolute time (time.monotonic() clock) by which every task must be finished
    lanes: int  # tasks that run at the same time (workers)
    steps: int  # configured training steps (the most a task gets)
    task_cap_s: float = 1200.0
    min_task_s: float = 5.0
    min_steps: int = 1
    train_fraction: float = 1.0  # the share of a task's time its training may use (run.ttt_time_fraction)
    pending_cost: float = 0.0  # cost of tasks not started yet
    running: dict[str, float] = field(default_factory=dict)  # task id -> its deadline
    _sec_per_step_unit: list[float] = field(default_factory=list)
    _overhead_unit: list[float] = field(default_factory=list)

    @classmethod
    def for_run(cls, cfg, deadline: float, lanes: int) -> BudgetPlanner:
        """The planner of a run with config `cfg` (a RunConfig) that must end by `deadline`."""
        return cls(deadline, lanes, cfg.train.steps, task_cap_s=cfg.run.task_timeout_s or 1e9, train_fraction=cfg.run.ttt_time_fraction)

    def order(self, tasks: Sequence[Task]) -> list[Task]:
        """Largest first; registers their total cost as the work that remains."""
        ordered = sorted(tasks, key=lambda t: (-task_cost(t), t.id))
        self.pending_cost = sum(task_cost(t) for t in ordered)
        return ordered

    def allot(self, task: Task, now: float) -> TaskBudget | None:
        """The budget for starting `task` now, or None when there is no time left to start it."""
        cost = task_cost(task)
        left = self.deadline - now
        self.pending_cost = max(cost, self.pending_cost)
        if left < self.min_task_s:
            self.pending_cost -= cost
            return None
        promised = sum(max(0.0, d - now) for d in self.running.values())
        free = max(0.0, self.lanes * left - promised)
        seconds = min(free * cost / self.pending_cost, self.task_cap_s, left)
        self.pending_cost -= cost
        if seconds < self.min_task_s:
            return None
        steps, why = self._steps_for(seconds, cost)
        self.running[task.id] = now + seconds
        return TaskBudget(seconds, now + seconds, steps, why)

    def requeue(self, task: Task) -> None:
        """A started task goes back to the not-started pool (its worker died and it will be retried):
        its lane is free again and its cost counts as pending again, so that the retry's `allot`
        charges it once. Without this the retry subtracts the cost a second time, and every later
        task's share is computed over too small a remainder (inflated shares, then nothing left)."""
        if self.running.pop(task.id, None) is not None:
            self.pending_cost += task_cost(task)

    def _steps_for(self, seconds: float, cost: float) -> tuple[int, str]:
        if not self._sec_per_step_unit:
            return self.steps, "no measurements yet: configured steps, deadline enforced"
        step_s = _median(self._sec_per_step_unit) * cost
        # No uncut task measured yet: no overhead estimate, the training fraction alone bounds it.
        overhead_s = _median(self._overhead_unit) * cost if self._overhead_unit else 0.0
        train_s = min(seconds - overhead_s, self.train_fraction * seconds)
        fit = int(train_s / step_s) if step_s > 0 else self.steps
        steps = max(self.min_steps, min(self.steps, fit))
        return steps, f"share {seconds:.0f}s: overhead ~{overhead_s:.1f}s + {steps} x {step_s:.2f}s/step"

    def observe(self, task: Task, total_s: float, train_s: float, steps: int, cut: bool = False) -> None:
        """Learn from a finished task: per-cost-unit step time, and overhead unless a deadline `cut`
        the task or one of its stages short (see `deadline_cut`); frees its lane."""
        self.running.pop(task.id, None)
        cost = task_cost(task)
        if steps > 0 and train_s > 0:
            self._sec_per_step_unit.append(train_s / steps / cost)
        if not cut:
            self._overhead_unit.append(max(0.0, total_s - train_s) / cost)


def deadline_cut(record: dict) -> bool:
    """True when a deadline cut the task short: status 'deadline', training stopped by its deadline,
    or a stage that says it ran into the deadline (generation stopped by `max_time`, scoring skipped)."""
    if record.get("status") == "deadline":
        return True
    for info in record.get("stages", {}).values():
        if info.get("stopped_by") == "deadline" or info.get("deadline_hit") or info.get("scoring_skipped"):
            return True
    return False


def observe_record(planner: BudgetPlanner, task: Task, record: dict) -> None:
    """`planner.observe` with what a task record says: its seconds, training's own seconds and steps, and whether it was cut."""
    t = record.get("stages", {}).get("ttt", {})
    train_s = t.get("train_seconds", t.get("seconds", 0.0))  # records before train_seconds: the stage time
    steps = t.get("steps", 0)
    if t.get("cached"):  # the adapter was loaded, not trained: those seconds and steps were another run's
        train_s, steps = 0.0, 0
    planner.observe(task, record.get("seconds", 0.0), train_s, steps, cut=deadline_cut(record))


def task_deadline(start: float, deadline: float | None, task_timeout_s: float | None) -> float | None:
    """The task's hard deadline: the planner's (or None) and `run.task_timeout_s` from `start`, whichever is first."""
    if task_timeout_s is None:
        return deadline
    cap = start + task_timeout_s
    return cap if deadline is None else min(deadline, cap)


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
