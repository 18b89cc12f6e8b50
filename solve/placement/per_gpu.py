"""`placement.mode=per_gpu`: one long-lived worker process per device, each solving whole tasks.

The main process owns everything shared: the run directory (the only writer of results.jsonl and
submission.json), the list of pending tasks (the queue workers pull from: an idle worker is handed
the next task), the budget planner (a task's budget is allotted when it is handed out, and observed
when its record comes back), and the progress bar. Workers (`solve.placement.gpu_worker`) run the unchanged
single-device pipeline.

Faults: a worker that dies (OOM killer, segfault, SIGKILL) is seen through its process sentinel; one
that outlives its task's deadline plus a margin is killed by the watchdog. Either way the worker is
replaced, and its task is tried once more with half the training steps; a second failure records
the task as failed with placeholder attempts. Records already written are never touched.
`placement.recycle_every` restarts a worker after that many tasks (a guard against memory creep).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.budget import BudgetPlanner, TaskBudget, task_deadline
from solve.pipeline.run import RunOptions, begin_task, end_task, finish_run, progress_bar
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import failed_record

WATCHDOG_MARGIN_S = 120.0  # past a task's deadline: stages check the deadline only between steps/batches
START_TIMEOUT_S = 1800.0  # loading a large base model from a slow disk
MAX_START_FAILURES = 2  # a slot whose worker cannot start twice in a row is given up
TRIES = 2  # a task whose worker died is tried once more, then recorded as failed


class WorkerDied(RuntimeError):
    """The worker solving a task died or was killed by the watchdog."""


@dataclass
class Slot:
    """One device's worker and what it is doing."""

    index: int
    device: str
    threads: int
    proc: Any = None
    conn: Any = None
    state: str = "down"  # down | starting | idle | busy | retired
    started: float = 0.0
    task: Task | None = None
    budget: TaskBudget | None = None
    try_number: int = 0
    watchdog: float | None = None  # time.monotonic() after which the busy worker is killed
    tasks_done: int = 0
    start_failures: int = 0
    last_error: dict[str, Any] | None = None


def worker_count(cfg: RunConfig) -> tuple[int, list[str]]:
    """(workers, device per worker): one per visible GPU by default, else CPU workers."""
    import torch

    gpus = torch.cuda.device_count() if cfg.model.device != "cpu" else 0
    n = cfg.placement.workers or max(1, gpus)
    devices = [f"cuda:{i % gpus}" for i in range(n)] if gpus else ["cpu"] * n
    return n, devices


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_per_gpu(
    cfg: RunConfig,
    tasks: Sequence[Task],
    opts: RunOptions,
    console: Console,
    watchdog_margin_s: float = WATCHDOG_MARGIN_S,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` with one worker per device."""
    run = RunDir.open(opts.out, tasks, cfg.model_dump(mode="json"))
    pending: deque[tuple[Task, int]] = deque((t, 1) for t in run.pending())  # (task, try number)
    if run.done:
        console.print(f"resuming {opts.out}: {len(run.done)} task(s) done, {len(pending)} to go")
    n, devices = worker_count(cfg)
    planner = None
    if opts.global_deadline_s is not None:
        planner = BudgetPlanner.for_run(cfg, time.monotonic() + opts.global_deadline_s, n)
        pending = deque((t, 1) for t in planner.order([t for t, _ in pending]))
    if not pending:
        finish_run(run, console)
        return run
    threads = max(1, _cores() // n)
    slots = [Slot(i, devices[i], threads) for i in range(n)]
    pool = _Pool(cfg, run, opts, planner, slots, pending, watchdog_margin_s, console)
    with progress_bar(console, opts.progress) as bar:
        pool.bar, pool.job = bar, bar.add_task("tasks", total=len(pending), status="")
        try:
            pool.loop()
        finally:
            pool.shutdown()
    finish_run(run, console)
    return run


class _Pool:
    """The main process's event loop over the workers' pipes and sentinels."""

    def __init__(self, cfg, run, opts, planner, slots, pending, margin, console):
        self.cfg, self.run, self.opts, self.planner = cfg, run, opts, planner
        self.slots: list[Slot] = slots
        self.pending: deque[tuple[Task, int]] = pending
        self.margin, self.console = margin, console
        self.ctx = mp.get_context("spawn")  # fresh interpreters: no inherited torch threads or CUDA state
        self.cfg_data = cfg.model_dump(mode="json")
        self.bar: Any = None
        self.job: Any = None
        self._retry_caps: dict[str, int] = {}  # task id -> training steps of its retry

    # --- the loop --------------------------------------------------------------------------------

    def loop(self) -> None:
        for slot in self.slots:
            self._start(slot)
        while self.pending or any(s.state == "busy" for s in self.slots):
            if all(s.state == "retired" for s in self.slots):
                self._give_up_remaining()
                return
            self._hand_out()
            waitables = [s.conn for s in self.slots if s.conn is not None] + [s.proc.sentinel for s in self.slots if s.proc is not None]
            wait(waitables, timeout=self._wait_timeout())
            for slot in self.slots:
                self._drain(slot)
                self._check(slot)

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        limits = [s.watchdog for s in self.slots if s.state == "busy" and s.watchdog is not None]
        limits += [s.started + START_TIMEOUT_S for s in self.slots if s.state == "starting"]
        return max(0.05, min([1.0] + [t - now for t in limits]))

    def _hand_out(self) -> None:
        for slot in self.slots:
            while slot.state == "idle" and self.pending:
                task, try_number = self.pending.popleft()
                now = time.monotonic()
                cap = None if try_number == 1 else self._retry_steps(slot, task)
                budget, skipped = begin_task(task, self.planner, self.run, self.opts, now, slot.index, cap)
                if skipped is not None:
                    self._record(skipped)
                    continue
                planned = None if budget is None or budget.deadline == float("inf") else budget.deadline
                end = task_deadline(now, planned, self.cfg.run.task_timeout_s)
                left = None if end is None else end - now
                slot.task, slot.budget, slot.try_number, slot.state = task, budget, try_number, "busy"
                slot.watchdog = None if left is None else now + left + self.margin
                self._retry_caps.pop(task.id, None)
                slot.conn.send(("task", task, left, None if budget is None else budget.steps, try_number))
                self._status(slot, "start")

    def _retry_steps(self, slot: Slot, task: Task) -> int:
        return self._retry_caps.get(task.id, max(1, self.cfg.train.steps // 2))

    # --- messages and faults ---------------------------------------------------------------------

    def _drain(self, slot: Slot) -> None:
        while slot.conn is not None:
            try:
                if not slot.conn.poll():
                    return
                msg = slot.conn.recv()
            except (EOFError, OSError):  # the worker is gone (possibly mid-message); _check handles it
                slot.conn.close()
                slot.conn = None
                return
            kind = msg[0]
            if kind == "ready":
                slot.state, slot.start_failures = "idle", 0
            elif kind == "stage":
                self._status(slot, msg[1])
            elif kind == "done":
                self._done(slot, msg[2])
            elif kind == "fatal":
                slot.last_error = msg[1]
                self.console.print(f"[red]worker {slot.index} could not start:[/] {msg[1]['type']}: {msg[1]['message']}")

    def _check(self, slot: Slot) -> None:
        if slot.proc is None or slot.state == "retired":
            return
        now = time.monotonic()
        alive = slot.proc.is_alive()
        if alive and slot.state == "busy" and slot.watchdog is not None and now > slot.watchdog:
            slot.proc.kill()  # past its deadline and margin: stuck in a kernel, a deadlock, a huge generate
            slot.proc.join(10)
            self._died(slot, f"killed by the watchdog {self.margin:.0f} s after the task's deadline")
        elif alive and slot.state == "starting" and now > slot.started + START_TIMEOUT_S:
            slot.proc.kill()
            slot.proc.join(10)
            self._died(slot, f"did not start within {START_TIMEOUT_S:.0f} s")
        elif not alive:
            self._drain(slot)  # a record sent just before exiting still counts
            slot.proc.join(1)
            code = slot.proc.exitcode
            why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            self._died(slot, f"died ({why})")

    def _died(self, slot: Slot, why: str) -> None:
        task, try_number, state = slot.task, slot.try_number, slot.state
        pid = slot.proc.pid if slot.proc is not None else None
        self._close(slot)
        if state == "starting":
            slot.start_failures += 1
            if slot.start_failures >= MAX_START_FAILURES:
                slot.state = "retired"
                self.console.print(f"[red]worker {slot.index} ({slot.device}) given up:[/] {why} at start, {slot.start_failures} times")
                return
        elif task is not None:
            msg = f"worker {slot.index} (pid {pid}, {slot.device}) {why} while solving {task.id} (try {try_number} of {TRIES})"
            self.console.print(f"[yellow]{msg}[/]")
            if self.planner is not None:
                self.planner.running.pop(task.id, None)  # its lane is free; a dead try teaches no timings
            if try_number < TRIES:
                steps = slot.budget.steps if slot.budget is not None else self.cfg.train.steps
                self._retry_caps[task.id] = max(1, steps // 2)
                self.pending.appendleft((task, try_number + 1))
            else:
                rec = failed_record(task, "worker", WorkerDied(msg))
                rec["tries"] = try_number
                end_task(task, rec, slot.budget, None, self.run, self.opts, slot.index)
                self._record(rec)
        self._start(slot)

    def _done(self, slot: Slot, rec: dict[str, Any]) -> None:
        task = slot.task
        rec["tries"] = slot.try_number
        end_task(task, rec, slot.budget, self.planner, self.run, self.opts, slot.index)
        self._record(rec)
        slot.task, slot.budget, slot.watchdog, slot.state = None, None, None, "idle"
        slot.tasks_done += 1
        every = self.cfg.placement.recycle_every
        if every and slot.tasks_done % every == 0 and self.pending:
            self._stop(slot)
            self._start(slot)

    def _record(self, rec: dict[str, Any]) -> None:
        self.run.record(rec)
        if self.bar is not None:
            self.bar.update(self.job, advance=1, status=f"{rec['task_id']}: {rec['status']}")

    def _give_up_remaining(self) -> None:
        err = next((s.last_error for s in self.slots if s.last_error), None)
        reason = f"{err['type']}: {err['message']}" if err else "workers died while starting"
        while self.pending:
            task, _ = self.pending.popleft()
            self._record(failed_record(task, "worker_start", WorkerDied(f"no worker could start: {reason}")))

    def _status(self, slot: Slot, stage: str) -> None:
        if self.bar is not None and slot.task is not None:
            self.bar.update(self.job, status=f"w{slot.index} {slot.task.id}: {stage}")

    # --- processes -------------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        from solve.placement.gpu_worker import worker_main

        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=worker_main, args=(slot.index, child, self.cfg_data, slot.device, slot.threads),
            name=f"arc-ttt-worker-{slot.index}", daemon=True,  # daemon: never outlives the main process
        )
        proc.start()
        child.close()  # the worker's end lives in the worker: EOF here once it exits
        slot.proc, slot.conn, slot.state, slot.started = proc, parent, "starting", time.monotonic()
        slot.task = slot.budget = slot.watchdog = None

    def _stop(self, slot: Slot) -> None:
        if slot.conn is not None:
            try:
                slot.conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass  # already gone: join below reaps it
        if slot.proc is not None:
            slot.proc.join(30)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(10)
        self._close(slot)

    def _close(self, slot: Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
        slot.proc, slot.conn, slot.state = None, None, "down" if slot.state != "retired" else "retired"

    def shutdown(self) -> None:
        for slot in self.slots:
            self._stop(slot)
