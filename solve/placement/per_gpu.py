"""`placement.mode=per_gpu`: one long-lived worker process per device, each solving whole tasks.

The main process owns everything shared: the run directory (the only writer of results.jsonl and
submission.json), the list of pending tasks (the queue workers pull from: an idle worker is handed
the next task), the budget planner (a task's budget is allotted when it is handed out, and observed
when its record comes back), and the progress bar. Workers (`solve.placement.gpu_worker`) run the unchanged
single-device pipeline.

Workers are plain child processes (subprocess, not multiprocessing): each in a session of its own,
so one SIGKILL to its process group ends it and whatever it started; output to DIR/worker-N.log; and
no interpreter-exit hook that joins them, so a worker stuck in a driver call that even SIGKILL cannot
end at once never hangs this process's exit. `stop_workers()` kills every worker this process
started (the Kaggle kernel's watchdog calls it before its hard exit).

Faults: a worker that dies (OOM killer, segfault, SIGKILL) is seen through its pipe and its exit
status; one that outlives its task's deadline plus a margin is killed by the watchdog. Every task has
such a deadline: the planner's share, `run.task_timeout_s`, or, when neither is set, DEFAULT_TASK_CAP_S
(a hang guard the worker is not told about, so it changes no result). Either way the worker is
replaced, and its task is tried once more with half the training steps (re-queued with the planner,
so its retry is charged once); a second failure records the task as failed with placeholder
attempts. Records already written are never touched. A task that cannot be sent to its worker (a
broken pipe) counts as the worker dying. `placement.recycle_every` restarts a worker after that many
tasks (a guard against memory creep).

Staggered starts (`placement.stagger_starts`, on by default): workers start together (their imports
overlap) but load the model one at a time. A worker asks for its turn ("load_wait") and the main
process grants it ("load") once no other worker is loading, that is once the previous one reported
"loaded" or died: host RAM holds one load's transient copy at a time, not N. A worker waiting for
its turn has no start timeout (its wait is bounded by the loader's); the loader's START_TIMEOUT_S
counts from its grant, so a worker hung or dead while loading is replaced and the next one goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.budget import BudgetPlanner, TaskBudget, task_deadline
from solve.pipeline.run import RunOptions, begin_task, end_task, finish_run, progress_bar
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import failed_record

WATCHDOG_MARGIN_S = 120.0  # past a task's deadline: stages check the deadline only between steps/batches
DEFAULT_TASK_CAP_S = 3600.0  # a task with no deadline at all is killed after this (+ margin): a hang guard
START_TIMEOUT_S = 1800.0  # loading a large base model from a slow disk
STOP_WAIT_S = 30.0  # idle workers asked to stop get this long, all together, before they are killed
# Workers' (and the kernel's) CUDA allocator: prompts and decodes of changing lengths fragment fixed segments until a
# request that would fit in total fails; expandable segments grow and return whole pages. A value already set wins.
CUDA_ALLOC_CONF = "expandable_segments:True"
KILL_WAIT_S = 10.0  # a worker not gone this long after SIGKILL is stuck in the kernel: it is abandoned
GONE_WAIT_S = 5.0  # a worker whose pipe broke gets this long to exit before it is killed
MAX_START_FAILURES = 2  # a slot whose worker cannot start twice in a row is given up
TRIES = 2  # a task whose worker died is tried once more, then recorded as failed
# Test-only fault hook: the main process raises in its event loop when it is about to hand out this task
# id, once per process (an orchestration bug; the Kaggle kernel resumes the run once). Nothing else reads it.
ORCHESTRATION_FAULT_ENV = "ARC_TTT_TEST_ORCHESTRATION_FAULT"
_ROOT = Path(__file__).resolve().parents[2]  # the project root: importable by a worker started elsewhere

_live: dict[int, subprocess.Popen] = {}  # pid -> worker this process started and has not reaped yet
_faults_fired: set[str] = set()


class WorkerDied(RuntimeError):
    """The worker solving a task died or was killed by the watchdog."""


class OrchestrationFault(RuntimeError):
    """Raised by the test-only orchestration fault hook."""


@dataclass
class Slot:
    """One device's worker and what it is doing."""

    index: int
    device: str
    threads: int
    proc: subprocess.Popen | None = None
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
    load: str = ""  # staggered starts: "" | waiting (for its turn to load the model) | loading (its turn)
    loads: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each model load, time.time()


def worker_count(cfg: RunConfig) -> tuple[int, list[str]]:
    """(workers, device per worker): one per visible GPU by default, else CPU workers."""
    import torch

    gpus = torch.cuda.device_count() if cfg.model.device != "cpu" else 0
    n = cfg.placement.workers or max(1, gpus)
    # Physical ids: a worker sets CUDA_VISIBLE_DEVICES itself, so logical index i must map through this
    # process's own CUDA_VISIBLE_DEVICES (e.g. "2,3": logical 0 is physical 2), or it lands outside the set.
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    physical = visible if len(visible) >= gpus > 0 else [str(i) for i in range(gpus)]
    devices = [f"cuda:{physical[i % gpus]}" for i in range(n)] if gpus else ["cpu"] * n
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
    watchdog_margin_s: float | None = None,
    planner: BudgetPlanner | None = None,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` with one worker per device.

    `watchdog_margin_s` (default WATCHDOG_MARGIN_S) is how long past a task's deadline its worker is
    killed; `planner` replaces the one built from `opts.global_deadline_s` (a caller that wants to
    inspect the plan)."""
    run = RunDir.open(opts.out, tasks, cfg.model_dump(mode="json"))
    pending: deque[tuple[Task, int]] = deque((t, 1) for t in run.pending())  # (task, try number)
    if run.done:
        console.print(f"resuming {opts.out}: {len(run.done)} task(s) done, {len(pending)} to go")
    n, devices = worker_count(cfg)
    if planner is None and opts.global_deadline_s is not None:
        planner = BudgetPlanner.for_run(cfg, time.monotonic() + opts.global_deadline_s, n)
    if planner is not None:
        pending = deque((t, 1) for t in planner.order([t for t, _ in pending]))
    if not pending:
        finish_run(run, console)
        return run
    slots = _slots(n, devices)
    margin = WATCHDOG_MARGIN_S if watchdog_margin_s is None else watchdog_margin_s
    pool = _Pool(cfg, run, opts, planner, slots, pending, margin, console)
    with progress_bar(console, opts.progress) as bar:
        pool.bar, pool.job = bar, bar.add_task("tasks", total=len(pending), status="")
        try:
            pool.loop()
        except BaseException:  # the loop failed (or Ctrl-C): end the workers now, then let it propagate
            pool.shutdown(graceful=False)
            raise
        pool.shutdown(graceful=True)
    finish_run(run, console)
    return run


def _slots(n: int, devices: Sequence[str]) -> list[Slot]:
    threads = max(1, _cores() // n)
    return [Slot(i, devices[i], threads) for i in range(n)]


def start_workers_only(cfg: RunConfig, out: str | Path, console: Console) -> list[Slot]:
    """Start the workers `cfg` asks for, wait until each is ready (model loaded, sandbox started) or
    given up, then stop them: what a run pays before its first task (benchmarks and tests of the start).
    Logs go to `out`/worker-N.log; each returned slot's `loads` holds its workers' model-load times."""
    run = RunDir.open(out, [], cfg.model_dump(mode="json"))
    n, devices = worker_count(cfg)
    pool = _Pool(cfg, run, RunOptions(out=Path(out), progress=False), None, _slots(n, devices), deque(), WATCHDOG_MARGIN_S,
                 console)
    try:
        for slot in pool.slots:
            pool._start(slot)
        while any(s.state == "starting" for s in pool.slots):
            pool._pump()
    except BaseException:
        pool.shutdown(graceful=False)
        raise
    finally:
        run.close()
    pool.shutdown(graceful=True)
    return pool.slots


def stop_workers() -> None:
    """SIGKILL every worker this process started, with whatever they started; waits for nothing (the
    Kaggle watchdog calls this right before its hard exit)."""
    for proc in list(_live.values()):
        _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the worker leads its own session: this reaches its children too
    except ProcessLookupError:  # already gone (and reaped)
        pass
    except PermissionError:  # the pid was reused by a process of someone else: ours is gone
        pass


def _exit_code(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status of `proc` once it exits within `timeout` seconds, else None."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _orchestration_fault(task_id: str) -> None:
    """The test-only fault: raise once per process for the task named by ORCHESTRATION_FAULT_ENV."""
    if task_id in os.environ.get(ORCHESTRATION_FAULT_ENV, "").split(",") and task_id not in _faults_fired:
        _faults_fired.add(task_id)
        raise OrchestrationFault(f"test-only orchestration fault while handing out {task_id}")


class _Pool:
    """The main process's event loop over the workers' pipes and exit statuses."""

    def __init__(self, cfg, run, opts, planner, slots, pending, margin, console):
        self.cfg, self.run, self.opts, self.planner = cfg, run, opts, planner
        self.slots: list[Slot] = slots
        self.pending: deque[tuple[Task, int]] = pending
        self.margin, self.console = margin, console
        self.cfg_data = cfg.model_dump(mode="json")
        self.load_queue: deque[Slot] = deque()  # staggered starts: workers waiting for their turn to load, in order
        if cfg.sandbox.workers == 0:  # "one per core" means this machine's cores shared among the workers' pools
            self.cfg_data["sandbox"]["workers"] = max(1, _cores() // len(slots))
        self.bar: Any = None
        self.job: Any = None
        self._retry_caps: dict[str, int] = {}  # task id -> training steps of its retry
        self.left_behind: list[subprocess.Popen] = []  # workers that outlived SIGKILL + KILL_WAIT_S

    # --- the loop --------------------------------------------------------------------------------

    def loop(self) -> None:
        for slot in self.slots:
            self._start(slot)
        while self.pending or any(s.state == "busy" for s in self.slots):
            if all(s.state == "retired" for s in self.slots):
                self._give_up_remaining()
                return
            self._hand_out()
            self._pump()

    def _pump(self) -> None:
        """One round: grant a load turn if one is free, wait for a message (at most 1 s), handle them all."""
        self._grant_load()
        wait([s.conn for s in self.slots if s.conn is not None], timeout=self._wait_timeout())
        for slot in self.slots:
            self._drain(slot)
            self._check(slot)

    def _wait_timeout(self) -> float:
        # At most 1 s: a worker's exit is noticed by polling its status (its pipe's EOF wakes us sooner).
        now = time.monotonic()
        limits = [s.watchdog for s in self.slots if s.state == "busy" and s.watchdog is not None]
        limits += [s.started + START_TIMEOUT_S for s in self.slots if s.state == "starting" and s.load != "waiting"]
        return max(0.05, min([1.0] + [t - now for t in limits]))

    def _grant_load(self) -> None:
        """Staggered starts: let the first waiting worker load the model when no other worker is loading."""
        if any(s.load == "loading" for s in self.slots):
            return
        while self.load_queue:
            slot = self.load_queue.popleft()
            if slot.load != "waiting" or slot.conn is None:  # died or stopped since it asked
                continue
            try:
                slot.conn.send(("load",))
            except (BrokenPipeError, ConnectionResetError, OSError):  # it died since it asked: _check sees its exit
                slot.load = ""
                continue
            # Its start timeout counts from now: the time it waited for its turn was bounded by the loader's.
            slot.load, slot.started = "loading", time.monotonic()
            return

    def _hand_out(self) -> None:
        for slot in self.slots:
            while slot.state == "idle" and self.pending:
                task, try_number = self.pending.popleft()
                _orchestration_fault(task.id)
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
                # The worker is told its deadline only when one is configured (so a run without one
                # behaves as a single-process run); the watchdog always has one.
                slot.watchdog = now + (DEFAULT_TASK_CAP_S if left is None else left) + self.margin
                self._retry_caps.pop(task.id, None)
                try:
                    slot.conn.send(("task", task, left, None if budget is None else budget.steps, try_number))
                except (BrokenPipeError, ConnectionResetError, OSError) as e:  # it died since its last message
                    self._kill(slot)
                    self._died(slot, f"could not be sent its task ({type(e).__name__}: {e})")
                    continue
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
            if kind == "load_wait":
                slot.load = "waiting"
                self.load_queue.append(slot)
            elif kind == "loaded":
                slot.load = ""  # its turn (if it had one) is over: _grant_load lets the next one in
                slot.loads.append((msg[1]["start"], msg[1]["end"]))
            elif kind == "ready":
                slot.state, slot.start_failures = "idle", 0
                if self.run.isolation is None and msg[1].get("isolation"):
                    self.run.note_isolation(msg[1]["isolation"])  # every worker's sandbox is configured alike
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
        code = slot.proc.poll()
        if code is None and slot.conn is None:  # its pipe broke: it is exiting; give the kernel a moment
            code = _exit_code(slot.proc, GONE_WAIT_S)
        if code is None and slot.state == "busy" and slot.watchdog is not None and now > slot.watchdog:
            # past its deadline and margin: stuck in a kernel, a deadlock, a huge generate
            self._kill(slot)
            self._died(slot, f"killed by the watchdog {self.margin:.0f} s after the task's deadline")
        elif code is None and slot.state == "starting" and slot.load != "waiting" and now > slot.started + START_TIMEOUT_S:
            self._kill(slot)
            self._died(slot, f"did not start within {START_TIMEOUT_S:.0f} s")
        elif code is None and slot.conn is None:  # its pipe is closed yet it runs on: it can serve no more
            self._kill(slot)
            self._died(slot, f"closed its pipe and did not exit within {GONE_WAIT_S:.0f} s")
        elif code is not None:
            self._drain(slot)  # a record sent just before exiting still counts
            _live.pop(slot.proc.pid, None)
            why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self._died(slot, f"died ({why})")

    def _kill(self, slot: Slot) -> None:
        """SIGKILL the worker's process group; wait for it at most KILL_WAIT_S. A process that is still
        there is stuck in the kernel (a driver call): it is left behind, never waited for again, and
        killed again by stop_workers() at the end."""
        proc = slot.proc
        if proc is None:
            return
        _signal_group(proc, signal.SIGKILL)
        if _exit_code(proc, KILL_WAIT_S) is None:
            self.console.print(f"[red]worker {slot.index} (pid {proc.pid}) still runs {KILL_WAIT_S:.0f} s after SIGKILL "
                               "(stuck in a driver call?); left behind, a new worker takes its place[/]")
            self.left_behind.append(proc)
            return
        _live.pop(proc.pid, None)

    def _died(self, slot: Slot, why: str) -> None:
        task, try_number, state = slot.task, slot.try_number, slot.state
        pid = slot.proc.pid if slot.proc is not None else None
        self._close(slot)
        if state == "starting":
            slot.start_failures += 1
            if slot.start_failures >= MAX_START_FAILURES:
                slot.state = "retired"
                self.console.print(f"[red]worker {slot.index} ({slot.device}) given up:[/] {why} at start, {slot.start_failures} times"
                                   f" (log: {self._log_path(slot)})")
                return
        elif task is not None:
            msg = f"worker {slot.index} (pid {pid}, {slot.device}) {why} while solving {task.id} (try {try_number} of {TRIES})"
            self.console.print(f"[yellow]{msg}[/] (log: {self._log_path(slot)})")
            if try_number < TRIES:
                if self.planner is not None:
                    self.planner.requeue(task)  # its lane is free and its cost pending again: the retry pays once
                steps = slot.budget.steps if slot.budget is not None else self.cfg.train.steps
                self._retry_caps[task.id] = max(1, steps // 2)
                self.pending.appendleft((task, try_number + 1))
            else:
                if self.planner is not None:
                    self.planner.running.pop(task.id, None)  # its lane is free; a dead try teaches no timings
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
            self._stop([slot])
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

    def _log_path(self, slot: Slot) -> Path:
        return self.run.path / f"worker-{slot.index}.log"

    def _start(self, slot: Slot) -> None:
        parent, child = mp.Pipe(duplex=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p))
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", CUDA_ALLOC_CONF)
        if slot.device.startswith("cuda"):
            env["CUDA_VISIBLE_DEVICES"] = slot.device.split(":", 1)[1]  # before the worker's torch sees CUDA
        with open(self._log_path(slot), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "solve.placement.gpu_worker", str(child.fileno()), str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                pass_fds=(child.fileno(),), start_new_session=True,
            )
        child.close()  # the worker's end lives in the worker: EOF here once it exits
        _live[proc.pid] = proc
        slot.proc, slot.conn, slot.state, slot.started = proc, parent, "starting", time.monotonic()
        slot.task = slot.budget = slot.watchdog = None
        try:
            parent.send(("init", slot.index, self.cfg_data, slot.device, slot.threads, str(self.run.path)))
        except (BrokenPipeError, ConnectionResetError, OSError):  # died at once: _check sees its exit
            parent.close()
            slot.conn = None

    def _stop(self, slots: Sequence[Slot], graceful: bool = True) -> None:
        """Ask idle workers to stop, wait for them all at most STOP_WAIT_S together, then kill what is
        left. A busy worker is killed at once (its task is abandoned anyway), and every worker when not
        `graceful` (the run failed: a resumed run starts fresh workers)."""
        polite = [s for s in slots if graceful and s.state != "busy"]
        for slot in polite:
            if slot.conn is not None:
                try:
                    slot.conn.send(("stop",))
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # already gone: the wait below reaps it
        until = time.monotonic() + STOP_WAIT_S
        for slot in slots:
            if slot.proc is None:
                continue
            if any(slot is p for p in polite) and _exit_code(slot.proc, max(0.0, until - time.monotonic())) is not None:
                _live.pop(slot.proc.pid, None)
            else:
                self._kill(slot)
            self._close(slot)

    def _close(self, slot: Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
        slot.load = ""  # a turn it held is free again (the loop grants it); a place in the queue is skipped
        slot.proc, slot.conn, slot.state = None, None, "down" if slot.state != "retired" else "retired"

    def shutdown(self, graceful: bool = True) -> None:
        """Stop every worker (bounded waits), then try once more to kill and reap those left behind;
        any still there stay in stop_workers()'s list and are never waited for."""
        self._stop(self.slots, graceful)
        for proc in self.left_behind:
            _signal_group(proc, signal.SIGKILL)
            if _exit_code(proc, 1.0) is not None:
                _live.pop(proc.pid, None)
