"""The Kaggle kernel's entry point: `python -m solve.kernel.main --config ...` (the notebook calls it).

Order of work, chosen so that every failure still leaves a complete, valid submission:
  1. read the challenges file and write /kaggle/working/submission.json with placeholder attempts for
     every task (before the config, torch or the model are touched);
  2. anchor the global deadline: kernel start (the notebook's first cell, or the first run of this
     entry point, persisted in kernel.json so a restart keeps the original clock) + budget - margin;
  3. detect the public placeholder file and, if so, run only a few small tasks with a short deadline;
  4. run_tasks with that deadline: the budget planner orders tasks largest first, gives each a share,
     stops starting tasks near the deadline; every finished task rewrites submission.json atomically;
  5. a watchdog ends the process at deadline + half the margin, whatever is running: it SIGKILLs the
     per_gpu workers and deepspeed ranks this process started (they would otherwise outlive it and
     keep the notebook's output pipe open), then exits; the submission on disk is valid at every
     instant, so a hard exit loses at most the tasks in flight. A run that raises (an orchestration
     bug, a broken pipe) is resumed once from the run directory before the kernel gives up;
  6. validate the submission again and repair any entry that is not valid (placeholders);
  7. exit with os._exit after stopping any child still alive: interpreter teardown (multiprocessing's
     join of its children, non-daemon threads of libraries) must not hang a finished kernel.

Every task id of the challenges file is answered: a task that does not parse is kept as an
`UnloadableTask` (placeholders for each test input of it that can be read), recorded as failed at
stage "load" in results.jsonl, and never solved.

The run directory IS the working directory (/kaggle/working): RunDir writes submission.json there
atomically after each task, so there is one file, one writer and nothing to keep in sync. Its other
files (results.jsonl, timeline.jsonl, config.yaml, report.md, kernel.json) become the kernel's
output, which is what you want to read after a Kaggle run. A placeholder run goes into a sub-directory
(its task subset is not the whole file) and is merged into the main submission when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

KAGGLE_CHALLENGES = "/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json"
KAGGLE_WORKING = "/kaggle/working"
KAGGLE_CONFIG = "/kaggle/input/arc-ttt-bundle/configs/kaggle-l4x4.yaml"
TWELVE_HOURS_S = 12 * 3600.0
START_ENV = "ARC_TTT_KERNEL_START"  # epoch seconds, set by the notebook's first cell
KERNEL_FILE = "kernel.json"
PLACEHOLDER_DIR = "arc-ttt-placeholder-run"
RUN_TRIES = 2  # a run that raises is resumed once (finished tasks are kept on disk)


@dataclass
class KernelClock:
    """When the kernel started and when the run must be over; persisted so a restart keeps it."""

    started_at: float  # epoch seconds
    budget_s: float
    margin_s: float
    grace_s: float | None = None  # hard stop this long after the deadline (None: half the margin)
    runs: list[dict[str, Any]] = field(default_factory=list)  # one entry per invocation (restarts)

    @property
    def deadline_at(self) -> float:
        return self.started_at + self.budget_s - self.margin_s

    @property
    def hard_stop_at(self) -> float:
        # Half the margin past the soft deadline: time for the last stage to notice its deadline,
        # yet well before Kaggle's own limit.
        return self.deadline_at + (self.margin_s / 2 if self.grace_s is None else self.grace_s)

    def left(self, now: float | None = None) -> float:
        return self.deadline_at - (time.time() if now is None else now)


def load_clock(path: Path, started_at: float, budget_s: float, margin_s: float, grace_s: float | None = None) -> KernelClock:
    """The first invocation's start time wins: a restarted kernel must not grant itself 12 new hours."""
    if path.is_file():
        data = json.loads(path.read_text())
        return KernelClock(float(data["started_at"]), budget_s, margin_s, grace_s, list(data.get("runs", [])))
    return KernelClock(started_at, budget_s, margin_s, grace_s)


def save_clock(path: Path, clock: KernelClock, extra: dict[str, Any]) -> None:
    from solve.select.submission import write_submission  # same atomic JSON write as the submission

    write_submission(asdict(clock) | {"deadline_at": clock.deadline_at} | extra, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m solve.kernel.main", description=__doc__.splitlines()[0])
    p.add_argument("--challenges", type=Path, default=Path(KAGGLE_CHALLENGES), help="challenges JSON (Kaggle format)")
    p.add_argument("--working", type=Path, default=Path(KAGGLE_WORKING), help="run directory; submission.json goes here")
    p.add_argument("--config", type=Path, default=Path(KAGGLE_CONFIG), help="run config YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override a.b=value (repeatable)")
    p.add_argument("--budget-s", type=float, default=TWELVE_HOURS_S, help="Kaggle's wall-clock limit, from kernel start")
    p.add_argument("--margin-s", type=float, default=1800.0, help="finish this long before the budget ends")
    p.add_argument("--started-at", type=float, default=None, help=f"kernel start, epoch seconds (default ${START_ENV} or now)")
    p.add_argument("--min-start-s", type=float, default=120.0,
                   help="do not load the model and start solving with less than this left (placeholders stay)")
    p.add_argument("--lanes", type=int, default=0, help="tasks run at once, for the planner (0 = from placement and GPUs)")
    p.add_argument("--placeholder", choices=("auto", "yes", "no"), default="auto", help="treat the file as the public placeholder")
    p.add_argument("--placeholder-sha256", action="append", default=[], help="extra sha256 of a known placeholder file")
    p.add_argument("--placeholder-tasks", type=int, default=4, help="placeholder mode: solve this many smallest tasks")
    p.add_argument("--placeholder-deadline-s", type=float, default=900.0, help="placeholder mode: their global deadline")
    p.add_argument("--placeholder-set", action="append", default=[], help="placeholder mode: extra config overrides")
    p.add_argument("--hard-stop-s", type=float, default=None, help="watchdog: hard exit this long after the deadline (default margin/2)")
    p.add_argument("--no-watchdog", action="store_true", help="never hard-exit (tests that call main() in-process)")
    p.add_argument("--progress", action="store_true", help="progress bar (off by default: notebook logs)")
    p.add_argument("--smoke-timeout-s", type=float, default=0.0,
                   help="before the run, a smoke test on every GPU within this many seconds (solve/kernel/smoke.py; 0 = none)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[arc-ttt kernel {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def kernel_lanes(cfg: Any, requested: int) -> int:
    """Tasks that run at the same time, which the planner shares time across.

    per_gpu placement runs one worker per GPU (or `placement.workers`); the other modes run one task
    at a time. Imports torch only to count GPUs, after the placeholder submission is on disk.
    """
    if requested > 0:
        return requested
    if cfg.placement.mode != "per_gpu":
        return 1
    if cfg.placement.workers:
        return cfg.placement.workers
    import torch

    return max(1, torch.cuda.device_count())


def repair_submission(run: Any, tasks: Sequence[Any]) -> list[str]:
    """Re-validate the run's submission; replace any invalid task entry by placeholders. Returns the problems."""
    from solve.select.submission import placeholder_submission, validate_submission

    problems = validate_submission(run.submission, tasks)
    if problems:
        fresh = placeholder_submission(tasks)
        bad = {t.id for t in tasks if validate_submission({t.id: run.submission.get(t.id)}, [t])}
        run.submission = {t.id: (fresh[t.id] if t.id in bad else run.submission[t.id]) for t in tasks}
        run.write_submission()
    return problems


class Watchdog:
    """Ends the process at an absolute time: a hung stage (a stuck generate, a dead worker) must not
    turn a valid partial submission into a Kaggle 'Notebook Timeout'."""

    def __init__(self, at: float, exit_code: int = 124):
        self.at, self.exit_code = at, exit_code
        self._timer = threading.Timer(max(0.0, at - time.time()), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        log(f"watchdog: hard stop at {time.strftime('%H:%M:%S', time.localtime(self.at))}; submission.json on disk is valid")
        stop_children()
        sys.stdout.flush()
        os._exit(self.exit_code)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def stop_children() -> None:
    """SIGKILL the per_gpu workers and deepspeed ranks this process started, if any: they would outlive
    os._exit, keep writing and hold the notebook's output pipe open. Imports nothing new: a placement
    that was never imported started nothing."""
    if "solve.placement.per_gpu" in sys.modules:
        sys.modules["solve.placement.per_gpu"].stop_workers()
    if "solve.placement.ds_launch" in sys.modules:
        sys.modules["solve.placement.ds_launch"].stop_launched()


def smallest_tasks(tasks: Sequence[Any], n: int) -> list[Any]:
    """The n cheapest tasks that can be solved (never one that failed to load)."""
    from augment.tasks import UnloadableTask
    from solve.pipeline.budget import task_cost

    usable = [t for t in tasks if not isinstance(t, UnloadableTask)]
    return sorted(usable, key=lambda t: (task_cost(t), t.id))[: max(0, n)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    entered = time.time()
    from augment.tasks import load_challenges
    from solve.pipeline.rundir import RunDir, RunDirError

    loaded = load_challenges(args.challenges)
    for issue in loaded.issues:  # a task we cannot parse cannot be solved, but its id must be answered
        log(f"WARNING: task {issue.task_id} cannot be loaded ({issue.problem}); it keeps placeholder attempts "
            f"({issue.tests_read} of {len(issue.test_inputs)} test input(s) readable) and is recorded as failed")
    tasks = loaded.with_unloadable()
    work = args.working
    # 1. A complete, valid submission before anything slow or fragile (RunDir.open keeps finished tasks
    # on resume, records the tasks that failed to load, and locks the directory for this process).
    try:
        run = RunDir.open(work, tasks, None)
    except RunDirError as e:  # another kernel writes this directory: leave it (and its submission) alone
        log(f"ERROR: {e}")
        return 2
    for note in run.notes:
        log(f"WARNING: {note}")
    log(f"{len(tasks)} task(s) from {args.challenges}; placeholder submission written to {run.submission_path}")

    # 2. The clock.
    env_start = os.environ.get(START_ENV)
    started = args.started_at if args.started_at is not None else (float(env_start) if env_start else entered)
    clock = load_clock(work / KERNEL_FILE, started, args.budget_s, args.margin_s, args.hard_stop_s)
    clock.runs.append({"entered_at": entered})
    log(f"kernel started {entered - clock.started_at:.0f}s ago; deadline in {clock.left():.0f}s (budget {args.budget_s:.0f}s - margin {args.margin_s:.0f}s)")

    # 3. Placeholder or real.
    from solve.kernel.placeholder import detect_placeholder

    check = detect_placeholder(args.challenges, [t.id for t in tasks], args.placeholder_sha256)
    placeholder = check.is_placeholder if args.placeholder == "auto" else args.placeholder == "yes"
    log(f"placeholder: {placeholder} ({'forced by --placeholder' if args.placeholder != 'auto' else check.reason})")
    save_clock(work / KERNEL_FILE, clock, {"placeholder": placeholder, "placeholder_reason": check.reason, "sha256": check.sha256})

    # Before anything touches CUDA in this process or its children (workers, ranks, the smoke test inherit it).
    from solve.placement.per_gpu import CUDA_ALLOC_CONF

    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", CUDA_ALLOC_CONF)
    rc = 0
    try:
        with Watchdog(clock.hard_stop_at) if not args.no_watchdog else _Null():
            if args.smoke_timeout_s > 0:
                _smoke(work, args.smoke_timeout_s)
            if placeholder:
                _run_placeholder(args, clock, tasks, run)
            else:
                _run_all(args, clock, tasks, work)
    except Exception as e:  # the submission on disk stays valid; report and exit non-zero, never raise into the notebook
        import traceback

        log(f"ERROR: run failed ({type(e).__name__}: {e}); submission.json keeps placeholders for unfinished tasks")
        traceback.print_exc()
        rc = 1
    # 6. Finalize: reopen from disk (the source of truth) and repair anything invalid.
    final = RunDir.open(work, tasks, None)
    problems = repair_submission(final, tasks)
    if problems:
        log(f"repaired {len(problems)} problem(s) in the submission: {problems[:3]}")
    clock.runs[-1] |= {"ended_at": time.time(), "rc": rc, "done": len(final.done)}
    save_clock(work / KERNEL_FILE, clock, {"placeholder": placeholder, "placeholder_reason": check.reason, "sha256": check.sha256})
    left = clock.left()
    log(f"done: {len(final.done)}/{len(tasks)} task(s) finished; {left:.0f}s before the deadline ({'met' if left >= 0 else 'MISSED'})")
    return rc


def _smoke(work: Path, timeout_s: float) -> None:
    """The smoke test (solve/kernel/smoke.py) reports; whatever it finds, the run goes on."""
    from solve.kernel.smoke import run_smoke

    try:
        run_smoke(work, log, timeout_s)
    except Exception as e:  # the test itself broke (not a device): say so, and still run the tasks
        log(f"WARNING: the smoke test could not run ({type(e).__name__}: {e})")


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _load_cfg(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    from solve.pipeline.runconfig import load_config

    return load_config(args.config, list(args.overrides) + list(extra))


def _run_all(args: argparse.Namespace, clock: KernelClock, tasks: Sequence[Any], work: Path) -> None:
    cfg = _load_cfg(args)
    left = clock.left()
    if left < args.min_start_s:  # loading the model alone could take this long: keep the placeholders
        log(f"only {left:.0f}s left (< --min-start-s {args.min_start_s:.0f}): not starting any task")
        return
    lanes = kernel_lanes(cfg, args.lanes)
    log(f"solving {len(tasks)} task(s) with {lanes} lane(s), global deadline in {left:.0f}s")
    _run_resuming(cfg, tasks, work, time.time() + left, lanes, args)


def _run_placeholder(args: argparse.Namespace, clock: KernelClock, tasks: Sequence[Any], run: Any) -> None:
    """A short pipeline on the smallest few tasks (proves install, model, GPUs work), merged in at the end."""
    cfg = _load_cfg(args, args.placeholder_set)
    subset = smallest_tasks(tasks, args.placeholder_tasks)
    left = min(clock.left(), args.placeholder_deadline_s)
    if not subset or left < args.min_start_s:
        log("placeholder mode: nothing to run")
        return
    lanes = kernel_lanes(cfg, args.lanes)
    log(f"placeholder mode: {len(subset)} smallest task(s), deadline {left:.0f}s, {lanes} lane(s)")
    sub = _run_resuming(cfg, subset, run.path / PLACEHOLDER_DIR, time.time() + left, lanes, args)
    for tid, rec in (sub.done.items() if sub is not None else ()):
        if tid not in run.done:
            run.record(rec)


def _run_resuming(cfg: Any, tasks: Sequence[Any], out: Path, end_at: float, lanes: int, args: argparse.Namespace) -> Any:
    """run_tasks until `end_at` (epoch seconds). A run that raises is resumed once from its directory
    (finished tasks stay finished): a one-off orchestration failure, a broken pipe to a worker, must
    not cost the rest of a 12-hour run. Returns the run directory, or None when no time was left."""
    import traceback

    from solve.pipeline.run import RunOptions
    from solve.pipeline.rundir import RunDirError
    from solve.placement.dispatch import run_tasks

    for attempt in range(1, RUN_TRIES + 1):
        left = end_at - time.time()
        if left < args.min_start_s:
            log(f"only {left:.0f}s left (< --min-start-s {args.min_start_s:.0f}): not (re)starting the run")
            return None
        try:
            return run_tasks(cfg, tasks, RunOptions(out=out, global_deadline_s=left, lanes=lanes, progress=args.progress))
        except RunDirError:  # locked by another process, or another config's results: resuming cannot help
            raise
        except Exception as e:  # any failure of the run loop is retried once, by resuming
            if attempt == RUN_TRIES:
                raise
            stop_children()  # whatever the failed run left running must not compete with the resumed one
            log(f"WARNING: the run failed ({type(e).__name__}: {e}); resuming it from {out} (try {attempt + 1} of {RUN_TRIES})")
            traceback.print_exc()
    return None


def exit_now(rc: int) -> None:
    """End the process with `rc` without interpreter teardown, after stopping any child still alive.
    Everything that matters is already durable (fsynced records, an atomically replaced submission);
    teardown is where a join on a stuck child or a library's non-daemon thread could hang forever."""
    stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    exit_now(main())
