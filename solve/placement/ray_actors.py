"""`--executor ray`: the tasks of one run, or of every run of a sweep or ablation, on a Ray cluster.

Work units are (run, task): one run for `arc-ttt run`, one per point and seed for `sweep`/`ablate`.
One Ray actor per GPU (or, on a CPU cluster, per `placement.cpus_per_worker` cores) loads the base
model once and solves unit after unit with the unchanged `solve_task`: the adapter is reset per task
inside it, exactly as in a single-process or per_gpu run. An actor keeps one engine at a time and
reloads only when a unit's model or lora section differs (units are handed out run by run, so a sweep
reloads once per such change, not per task); it keeps one sandbox pool per sandbox section.

The driver (this process) owns every run directory, as per_gpu's main process does: it opens and locks
them, hands an idle actor the next unit (`solve.pipeline.run.begin_task`: budget planner, timeline),
and writes what comes back: `tasks/<id>.json` (the actor writes it into a temporary directory of its
own and returns its content, so workers on other nodes need no shared file system), then the record
(`end_task`, `RunDir.record`: results.jsonl and submission.json, valid at every moment). `show`,
`merge`, reports and plots cannot tell a Ray run from a local one, and either resumes the other (the
executor is not part of the config).

Faults are Ray's: actors are created with `max_restarts=-1` and `max_task_retries=1`, so an actor
that dies mid-task (OOM killer, segfault, its node lost) is restarted (a new process, on another node
when its node is gone), loads the model again, and the unit is retried once; a second death returns
an error, and the task is recorded `failed` at stage "worker" with Ray's reason. Finished records are
already on disk. A small ledger actor on the driver's node counts the tries of each unit (the record's
`tries`). A unit that outlives its deadline (or, without one, per_gpu's hang guard) plus the margin has
its actor killed, which Ray treats as any other death. Ctrl-C kills the actors; every record written
stays, and the submissions are valid.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from collections import deque
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.budget import BudgetPlanner, TaskBudget, task_deadline
from solve.pipeline.run import RunOptions, begin_task, end_task, finish_run, progress_bar
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import failed_record
from solve.placement.per_gpu import DEFAULT_TASK_CAP_S, START_TIMEOUT_S, WATCHDOG_MARGIN_S, WorkerDied

# Test-only fault hook, read by the driver when it hands out a unit (so it reaches actors on any node):
# comma-separated "<id>" (every try) or "<id>@<try>" (that try only); the actor solving that task
# SIGKILLs itself when the task reaches its training stage, as the OOM killer would.
KILL_ENV = "ARC_TTT_TEST_RAY_KILL_TASK"
RETRIES = 1  # Ray retries a unit whose actor died once (max_task_retries), then it is recorded as failed
INSTALL_HINT = "--executor ray needs Ray: pip install 'arc-ttt[ray]'"


class RayExecutorError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or it cannot host one actor."""


@dataclass
class RayJob:
    """One run directory's work: its config, its tasks, its options (out, global deadline)."""

    cfg: RunConfig
    tasks: Sequence[Task]
    opts: RunOptions


@dataclass
class _Unit:
    job: int  # index into the jobs (and their run directories)
    task: Task
    budget: TaskBudget | None = None
    watchdog: float = 0.0  # time.monotonic() after which the actor solving it is killed
    kills: int = 0  # times the watchdog killed its actor


@dataclass
class _Actor:
    slot: int
    handle: Any
    state: str = "starting"  # starting | idle | busy | dead
    started: float = 0.0
    unit: _Unit | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --- connecting ---------------------------------------------------------------------------------------


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayExecutorError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, log_path: Path | None = None) -> bool:
    """Join the Ray cluster at `address`; None or "auto": the running cluster (RAY_ADDRESS, or the one
    `ray start` left on this machine), else a new local instance; "local": always a new local instance.
    A session already initialized in this process (a test's) is used as it is. Returns True when this
    call started the session (the caller shuts it down). What ray.init says goes to `log_path`."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    # Worker output stays in the cluster's log files (/tmp/ray/session_*/logs). With configure_logging off,
    # ray.init leaves the "ray" logger without handlers, so its warnings while starting (token auth, a
    # local instance) reach Python's last-resort handler, that is sys.stderr: pointed at the log here.
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    with _stderr_to(log_path):
        if address in (None, "auto"):
            try:
                ray.init(address="auto", **kw)
            except ConnectionError:  # no cluster running here: a local instance of this machine's cores
                ray.init(**kw)
        elif address == "local":
            ray.init(**kw)
        else:
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RayExecutorError(f"cannot reach the Ray cluster at --ray-address {address!r}: {e}") from None
    return True


@contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f, redirect_stderr(f):
        yield


@contextmanager
def ray_output_to(path: Path | None) -> Iterator[None]:
    """While the block runs, Ray's driver-side output goes to the "ray" logger, and that logger to `path`
    (None: wherever it already goes). Ray prints the cluster's
    error messages (e.g. "a worker died") to stdout from a thread whatever log_to_driver says; we report
    the same events in our own words, so those become log records too. print_to_stdstream is looked up
    per message in ray._private.worker; a Ray version without it is left as it is."""
    from ray._private import worker  # after ray.init (`connect`), which resets the "ray" logger

    ray_log = logging.getLogger("ray")
    saved = (list(ray_log.handlers), ray_log.propagate, getattr(worker, "print_to_stdstream", None))
    handler = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8", delay=True)  # no file unless Ray says something
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        ray_log.handlers, ray_log.propagate = [handler], False

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:  # noqa: ARG001 (Ray's signature)
        for line in data.get("lines", []):
            ray_log.warning("(%s) %s", data.get("pid", "ray"), line)

    if saved[2] is not None:
        worker.print_to_stdstream = to_log
    try:
        yield
    finally:
        if saved[2] is not None:
            worker.print_to_stdstream = saved[2]
        if handler is not None:
            ray_log.handlers, ray_log.propagate = saved[0], saved[1]
            handler.close()


def actor_resources(cfg: RunConfig, cluster: dict[str, float]) -> tuple[int, float, float]:
    """(actors, CPUs each, GPUs each) for `cfg` on a cluster with `cluster` resources (ray.cluster_resources()).

    GPUs: `placement.gpus_per_worker` each when the model may use a GPU (model.device not cpu) and the cluster
    has any, else none. CPUs: `placement.cpus_per_worker`, or 0 = the cluster's CPUs shared among its GPU
    actors, or 1 each on a CPU cluster. Actors: `placement.workers`, or 0 = as many as the cluster holds."""
    p = cfg.placement
    cpus_total, gpus_total = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    gpus = p.gpus_per_worker if cfg.model.device != "cpu" and gpus_total > 0 else 0.0
    if p.cpus_per_worker:
        cpus = float(p.cpus_per_worker)
    elif gpus:
        cpus = float(max(1, int(cpus_total // max(1, int(gpus_total // gpus)))))
    else:
        cpus = 1.0
    fits = [int(cpus_total // cpus)] + ([int(gpus_total // gpus)] if gpus else [])
    n = p.workers or min(fits)
    if n < 1 or min(fits) < 1:
        raise RayExecutorError(f"the Ray cluster ({cpus_total:g} CPUs, {gpus_total:g} GPUs) cannot host one actor of "
                               f"{cpus:g} CPUs and {gpus:g} GPUs (placement.cpus_per_worker, placement.gpus_per_worker)")
    return n, cpus, gpus


# --- the actor (runs in Ray's worker processes) -----------------------------------------------------------


class Ledger:
    """Counts the tries of each unit, on the driver's node: a restarted actor has forgotten its own."""

    def __init__(self) -> None:
        self.tries: dict[str, int] = {}

    def begin(self, key: str) -> int:
        self.tries[key] = self.tries.get(key, 0) + 1
        return self.tries[key]


class Solver:
    """One actor: a model (loaded once per model+lora section), a sandbox pool, tasks one at a time."""

    def __init__(self, slot: int, cpus: float, gpus: float, ledger: str) -> None:
        import torch

        self.slot, self.threads, self.gpus, self.ledger_name = slot, max(1, int(cpus)), gpus, ledger
        self.ledger: Any = None  # its handle, looked up by name on first use
        torch.set_num_threads(self.threads)
        self.engine: Any = None
        self.engine_key = ""
        self.sandboxes: dict[str, Any] = {}
        self.done = 0
        self.scratch = tempfile.mkdtemp(prefix="arc-ttt-ray-")  # tasks/<id>.json before it goes to the driver

    def _local(self, cfg_data: dict[str, Any]) -> RunConfig:
        """The unit's config as this process runs it: the GPU Ray gave it (CUDA_VISIBLE_DEVICES holds just that one),
        or the CPU for an actor given none, whatever GPUs its node has; its share of the sandbox."""
        from solve.pipeline.runconfig import config_from_dict

        cfg = config_from_dict(cfg_data)
        update: dict[str, Any] = {}
        if cfg.model.device != "cpu":
            update["model"] = cfg.model.model_copy(update={"device": "cuda:0" if self.gpus else "cpu"})
        if cfg.sandbox.workers == 0:  # "one per core": this actor's cores
            update["sandbox"] = cfg.sandbox.model_copy(update={"workers": self.threads})
        return cfg.model_copy(update=update)

    def _engine(self, cfg: RunConfig) -> Any:
        from solve.pipeline.stages import Engine

        key = json.dumps(cfg.model_dump(mode="json", include={"model", "lora"}), sort_keys=True)
        if key != self.engine_key:
            self.engine = None  # drop the previous model before loading the next one
            self.engine, self.engine_key = Engine.load(cfg), key
        return self.engine

    def _sandbox(self, cfg: RunConfig) -> Any:
        from solve.sandbox.pool import Sandbox

        key = json.dumps(cfg.sandbox.model_dump(mode="json"), sort_keys=True)
        if key not in self.sandboxes:
            for old in self.sandboxes.values():
                old.close()
            self.sandboxes = {key: Sandbox(cfg.sandbox)}
        return self.sandboxes[key]

    def ready(self, cfg_data: dict[str, Any]) -> dict[str, Any]:
        """Load the model and start the sandbox for the first run's config; what this actor is."""
        import ray

        start = time.time()
        cfg = self._local(cfg_data)
        self._engine(cfg)
        sandbox = self._sandbox(cfg)
        return {"slot": self.slot, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "device": cfg.model.device,
                "threads": self.threads, "isolation": sandbox.isolation, "load_s": round(time.time() - start, 2)}

    def solve(self, unit_key: str, task: Task, cfg_data: dict[str, Any], seconds_left: float | None, steps: int | None,
              kill_tries: list[int]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(record, tasks/<id>.json content or None) of one task, as a per_gpu worker solves it."""
        import ray

        from solve.pipeline.artifacts import artifacts_path, read_artifacts
        from solve.pipeline.peak_memory import peak_memory, reset_peak_memory
        from solve.pipeline.stages import failed_record, solve_task

        if self.ledger is None:
            self.ledger = ray.get_actor(self.ledger_name)
        tries = ray.get(self.ledger.begin.remote(unit_key))
        cfg = self._local(cfg_data)
        engine, sandbox = self._engine(cfg), self._sandbox(cfg)
        deadline = None if seconds_left is None else time.monotonic() + seconds_left
        kill = tries in kill_tries

        def on_stage(name: str) -> None:
            if name == "ttt" and kill:
                os.kill(os.getpid(), signal.SIGKILL)

        reset_peak_memory()
        start = time.monotonic()
        try:
            rec = solve_task(task, cfg, engine, sandbox, deadline=deadline, train_steps=steps, on_stage=on_stage,
                             artifacts_dir=Path(self.scratch))
        except Exception as e:  # solve_task records its own failures; this is a bug outside any stage
            rec = failed_record(task, "pipeline", e, time.monotonic() - start)
        self.done += 1
        rec["tries"] = tries
        rec["worker"] = {"slot": self.slot, "pid": os.getpid(), "device": cfg.model.device, "task_number": self.done,
                         "try": tries, "node": ray.get_runtime_context().get_node_id(), "executor": "ray", **peak_memory()}
        artifacts = read_artifacts(self.scratch, task.id)
        artifacts_path(self.scratch, task.id).unlink(missing_ok=True)
        return rec, artifacts


# --- the driver -----------------------------------------------------------------------------------------


def _kill_spec() -> dict[str, list[int]]:
    """KILL_ENV as task id -> tries on which its actor dies (every try: 1 .. RETRIES + 1)."""
    spec: dict[str, list[int]] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(KILL_ENV, "").split(","))):
        tid, _, at = item.partition("@")
        spec.setdefault(tid, []).extend([int(at)] if at else range(1, RETRIES + 2))
    return spec


def run_ray(jobs: Sequence[RayJob], console: Console, address: str | None = None, progress: bool = True,
            log_path: Path | None = None, watchdog_margin_s: float = WATCHDOG_MARGIN_S) -> list[RunDir]:
    """Solve every pending task of every job into its run directory on a Ray cluster (see the module doc);
    Ray's driver-side log lines go to `log_path` (e.g. DIR/ray.log)."""
    if not jobs:
        return []
    runs: list[RunDir] = []
    try:
        for j in jobs:
            runs.append(RunDir.open(j.opts.out, j.tasks, j.cfg.model_dump(mode="json")))
    except BaseException:
        for r in runs:
            r.close()
        raise
    started = connect(address, log_path)
    # Ray's messages about the actors killed at the end arrive while it shuts down: still routed then.
    with ray_output_to(log_path):
        try:
            _drive(jobs, runs, console, progress, watchdog_margin_s)
        finally:
            if started:
                with _stderr_to(log_path):
                    import_ray().shutdown()
    return runs


def _drive(jobs: Sequence[RayJob], runs: Sequence[RunDir], console: Console, progress: bool, margin: float) -> None:
    driver = _Driver(jobs, runs, console, margin)
    if driver.pending:
        with progress_bar(console, progress) as bar:
            driver.bar, driver.job = bar, bar.add_task("tasks", total=len(driver.pending), status="")
            try:
                driver.loop()
            finally:
                driver.stop()
    for r in runs:
        finish_run(r, console)


class _Driver:
    def __init__(self, jobs: Sequence[RayJob], runs: Sequence[RunDir], console: Console, margin: float) -> None:
        ray = import_ray()
        self.ray, self.jobs, self.runs, self.console, self.margin = ray, jobs, runs, console, margin
        self.n, self.cpus, self.gpus = actor_resources(jobs[0].cfg, ray.cluster_resources())
        self.cfg_data = [j.cfg.model_dump(mode="json") for j in jobs]
        self.planners: list[BudgetPlanner | None] = []
        self.pending: deque[_Unit] = deque()
        for i, (j, r) in enumerate(zip(jobs, runs)):
            todo = r.pending()
            if todo and len(r.done):
                console.print(f"resuming {j.opts.out}: {len(r.done)} task(s) done, {len(todo)} to go")
            planner = None
            if j.opts.global_deadline_s is not None:
                planner = BudgetPlanner.for_run(j.cfg, time.monotonic() + j.opts.global_deadline_s, self.n)
                todo = planner.order(todo)
            self.planners.append(planner)
            self.pending.extend(_Unit(i, t) for t in todo)
        self.kill = _kill_spec()
        self.actors: list[_Actor] = []
        self.inflight: dict[Any, _Actor] = {}  # ObjectRef -> the actor it belongs to (a ready() or a solve())
        self.bar: Any = None
        self.job: Any = None
        self.ledger_name = f"arc-ttt-ledger-{os.getpid()}-{time.time_ns()}"
        self.ledger: Any = None
        self.start_error = "every actor died while starting"

    def loop(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self.ray.get_runtime_context().get_node_id()
        # The ledger must outlive any solver: on the driver's node, which the run cannot survive losing anyway.
        self.ledger = self.ray.remote(Ledger).options(
            name=self.ledger_name, num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()
        solver = self.ray.remote(Solver).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=-1, max_task_retries=RETRIES)
        now = time.monotonic()
        for slot in range(self.n):
            actor = _Actor(slot, solver.remote(slot, self.cpus, self.gpus, self.ledger_name), started=now)
            self.actors.append(actor)
            self.inflight[actor.handle.ready.remote(self.cfg_data[self.pending[0].job])] = actor
        where = f"{self.cpus:g} CPU" + (f" + {self.gpus:g} GPU" if self.gpus else "") + " each"
        self.console.print(f"ray: {self.n} actor(s), {where}; {len(self.pending)} task(s) in {len(self.runs)} run(s)")
        while self.pending or any(a.state == "busy" for a in self.actors):
            if not any(a.state in ("starting", "idle", "busy") for a in self.actors):
                self._give_up_remaining()
                return
            self._hand_out()
            done, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=self._wait_timeout())
            for ref in done:
                self._finished(ref, self.inflight.pop(ref))
            self._watchdogs()

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        limits = [a.unit.watchdog for a in self.actors if a.state == "busy" and a.unit is not None]
        limits += [a.started + START_TIMEOUT_S for a in self.actors if a.state == "starting"]
        return max(0.05, min([1.0] + [t - now for t in limits]))

    def _hand_out(self) -> None:
        for actor in self.actors:
            while actor.state == "idle" and self.pending:
                unit = self.pending.popleft()
                run, cfg = self.runs[unit.job], self.jobs[unit.job].cfg
                now = time.monotonic()
                budget, skipped = begin_task(unit.task, self.planners[unit.job], run, self.jobs[unit.job].opts, now, actor.slot)
                if skipped is not None:
                    self._record(unit, skipped)
                    continue
                planned = None if budget is None or budget.deadline == float("inf") else budget.deadline
                end = task_deadline(now, planned, cfg.run.task_timeout_s)
                left = None if end is None else end - now
                unit.budget = budget
                # Each try gets its whole deadline plus the margin: the driver cannot see when Ray retries.
                unit.watchdog = now + (RETRIES + 1) * ((DEFAULT_TASK_CAP_S if left is None else left) + self.margin)
                key = f"{run.path.resolve()}::{unit.task.id}"
                ref = actor.handle.solve.remote(key, unit.task, self.cfg_data[unit.job], left,
                                                None if budget is None else budget.steps, self.kill.get(unit.task.id, []))
                self.inflight[ref] = actor
                actor.state, actor.unit = "busy", unit
                if self.bar is not None:
                    self.bar.update(self.job, status=f"a{actor.slot} {unit.task.id}")

    def _finished(self, ref: Any, actor: _Actor) -> None:
        from ray.exceptions import RayActorError, RayError

        if actor.state == "dead":  # given up while starting: its ready() ended with the kill
            return
        if actor.state == "starting":
            try:
                actor.info = self.ray.get(ref)
            except RayError as e:
                actor.state, self.start_error = "dead", _reason(e)
                self.console.print(f"[red]ray actor {actor.slot} could not start:[/] {self.start_error}")
                self.ray.kill(actor.handle, no_restart=True)
                return
            for run in self.runs:
                if run.isolation is None:
                    run.note_isolation(actor.info["isolation"])
            actor.state = "idle"
            return
        unit = actor.unit
        actor.state, actor.unit = "idle", None
        try:
            rec, artifacts = self.ray.get(ref)
        except RayActorError as e:  # its actor died on every try (Ray retried it once), or was killed by the watchdog
            why = "killed by the watchdog (past its deadline + margin)" if unit.kills else _reason(e)
            msg = f"ray actor {actor.slot} died while solving {unit.task.id} ({RETRIES + 1} tries): {why}"
            self.console.print(f"[yellow]{msg}[/]")
            rec, artifacts = failed_record(unit.task, "worker", WorkerDied(msg)), None
            rec["tries"] = RETRIES + 1
        except RayError as e:  # the actor lives, but its call raised outside solve_task (which records its own)
            msg = f"ray actor {actor.slot} failed on {unit.task.id}: {_reason(e)}"
            self.console.print(f"[yellow]{msg}[/]")
            rec, artifacts = failed_record(unit.task, "worker", e), None
        run = self.runs[unit.job]
        if artifacts is not None:
            from solve.pipeline.artifacts import artifacts_path, write_artifacts

            write_artifacts(artifacts_path(run.path, unit.task.id), artifacts)
        end_task(unit.task, rec, unit.budget, self.planners[unit.job], run, self.jobs[unit.job].opts, actor.slot)
        self._record(unit, rec)

    def _record(self, unit: _Unit, rec: dict[str, Any]) -> None:
        self.runs[unit.job].record(rec)
        if self.bar is not None:
            self.bar.update(self.job, advance=1, status=f"{rec['task_id']}: {rec['status']}")

    def _watchdogs(self) -> None:
        now = time.monotonic()
        for actor in self.actors:
            if actor.state == "busy" and actor.unit is not None and now > actor.unit.watchdog:
                actor.unit.kills += 1
                actor.unit.watchdog = now + self.margin + DEFAULT_TASK_CAP_S  # its call now ends with an error
                self.ray.kill(actor.handle, no_restart=False)  # Ray restarts it for the next units
            elif actor.state == "starting" and now > actor.started + START_TIMEOUT_S:
                actor.state = "dead"
                self.start_error = f"not ready after {START_TIMEOUT_S:.0f} s (no room on the cluster, or a stuck load)"
                self.ray.kill(actor.handle, no_restart=True)

    def _give_up_remaining(self) -> None:
        reason = self.start_error
        while self.pending:
            unit = self.pending.popleft()
            self._record(unit, failed_record(unit.task, "worker_start", WorkerDied(f"no Ray actor could start: {reason}")))

    def stop(self) -> None:
        """Kill every actor (and the ledger): a finished run needs them no more, an interrupted one must not
        leave them solving into nothing."""
        for actor in self.actors:
            self.ray.kill(actor.handle, no_restart=True)
        if self.ledger is not None:
            self.ray.kill(self.ledger, no_restart=True)


def _reason(e: BaseException) -> str:
    """Ray's explanation of an error, on one line, not too long for a record's message."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:400]}"
