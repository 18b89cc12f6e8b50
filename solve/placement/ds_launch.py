"""Start a deepspeed placement's ranks from a plain process, with the standard `deepspeed` launcher.

`arc-ttt run` (or the Kaggle kernel) with placement.mode=deepspeed and more than one rank
(`placement.ranks`, 0 = one per visible GPU) is not itself a rank: it writes the config and tasks into
DIR/deepspeed-launch/ and runs

    python -m deepspeed.launcher.runner --num_gpus N --no_local_rank --module solve.placement.ds_rank \\
        --config DIR/deepspeed-launch/config.yaml --tasks DIR/deepspeed-launch/tasks.json --out DIR ...

which is what `deepspeed --num_gpus N ...` runs (on a CPU machine with DS_ACCELERATOR=cpu). Rank 0
writes the run directory as usual; this process only waits and reads it back.

Faults: a launch that ends with tasks unrecorded (a rank died, so the launcher ended the others, or
a rank failed inside a collective and the ranks stopped cleanly: see solve.placement.ds_rank) is started again
and resumes from the run directory. The task in flight when ranks died (this launch's last 'start'
in timeline.jsonl without a record) is retried once; if the ranks die on it again it is recorded as
failed with placeholder attempts and the rest of the run goes on. Two launches in a row that record
nothing end the run, the tasks left recorded as failed. The global deadline is passed to every
launch as the time left; ranks still running DEADLINE_GRACE_S after it are killed, and tasks left
unstarted are recorded as 'deadline' (a resumed run tries them).

This process holds the run directory's lock (solve.pipeline.rundir) for the whole run and hands it to
the ranks through the environment. Tasks that failed to load are recorded by this process and never
sent to the ranks. On a CPU host every rank of a launch creates a DeepSpeed shared-memory allreduce
buffer, /dev/shm/deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank> (about 69 MB), which DeepSpeed
never removes: each launch's buffers are removed when it ends, however it ends (ranks killed included).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from augment.tasks import Task, UnloadableTask
from solve.pipeline.runconfig import RunConfig, dump_config
from solve.pipeline.rundir import RunDir, read_results
from solve.pipeline.stages import failed_record

LAUNCH_DIR = "deepspeed-launch"
MAX_LAUNCHES_WITHOUT_PROGRESS = 2
DEADLINE_GRACE_S = 60.0  # ranks get this long past the global deadline before they are killed
TIMED_OUT = -1  # wait_launch's return when it killed the ranks at the deadline
SHM_DIR = Path("/dev/shm")
SHM_BUFFER = re.compile(r"deepspeed_allreduce_buffer_(?P<uid>\d+)_(?P<addr>.*)_(?P<port>\d+)_(?P<rank>\d+)")
_live: list[tuple[subprocess.Popen, int]] = []  # (launcher, master port) to end if this process is stopped hard


class RanksDied(RuntimeError):
    """The ranks died (twice) while solving this task."""


def launched_as_rank() -> bool:
    """True inside a process that a launcher (deepspeed, torchrun) started as one rank."""
    return "RANK" in os.environ


def rank_count(cfg: RunConfig) -> int:
    if cfg.placement.ranks:
        return cfg.placement.ranks
    import torch

    return max(1, torch.cuda.device_count())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(n: int, config: Path, tasks: Path, out: Path, deadline_s: float | None, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(n), "--master_port", str(port),
           "--no_local_rank", "--module", "solve.placement.ds_rank",
           "--config", str(config), "--tasks", str(tasks), "--out", str(out), "--no-progress"]
    if deadline_s is not None:
        cmd += ["--deadline", f"{deadline_s:.1f}"]
    return cmd


def launch_ranks(cfg: RunConfig, tasks: Sequence[Task], opts: Any, console: Console, n: int) -> RunDir:
    """Run `tasks` on `n` launched ranks until none is pending, the deadline passes or launches stop
    making progress; returns the run directory as rank 0 left it."""
    run = RunDir.open(opts.out, tasks, None)  # a valid submission before the ranks start
    work = Path(opts.out) / LAUNCH_DIR
    work.mkdir(parents=True, exist_ok=True)
    config, tasks_file = work / "config.yaml", work / "tasks.json"
    config.write_text(dump_config(cfg))
    # Test outputs are kept for scoring. Tasks that failed to load are already recorded (RunDir.open).
    tasks_file.write_text(json.dumps({t.id: t.to_json() for t in tasks if not isinstance(t, UnloadableTask)}))
    end = None if opts.global_deadline_s is None else time.monotonic() + opts.global_deadline_s
    env = dict(os.environ) | run.delegate_env()  # rank 0 writes the directory this process has locked
    import torch

    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed looks for an accelerator and fails
    died_on: dict[str, int] = {}
    stalled, launches, rc = 0, 0, 0
    # The first launch takes every pending task (a resumed run retries those the deadline skipped);
    # a relaunch only those the ranks left without any record.
    while todo := (run.pending() if launches == 0 else _unrecorded(run)):
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            break
        before = len(read_results(run.results_path))
        timeline = run.path / "timeline.jsonl"
        since = timeline.stat().st_size if timeline.exists() else 0  # this launch's events start here
        port = free_port()
        console.print(f"launching {n} deepspeed ranks for {len(todo)} task(s) (master port {port})")
        rc = wait_launch(launch_command(n, config, tasks_file, Path(opts.out), left, port), env, left, port)
        launches += 1
        run = RunDir.open(opts.out, tasks, None)
        in_flight = _unfinished_start(run, since)
        if rc == TIMED_OUT:
            if in_flight is not None:
                err = TimeoutError("the global deadline passed while the deepspeed ranks were solving this task")
                run.record(failed_record(_task(tasks, in_flight), "deepspeed", err, status="deadline"))
            break
        if not _unrecorded(run):
            break
        if rc != 0 and in_flight is not None:
            died_on[in_flight] = died_on.get(in_flight, 0) + 1
            if died_on[in_flight] >= 2:  # retried once already: record it and go on without it
                err = RanksDied(f"the deepspeed ranks died twice on task {in_flight} (launcher exit code {rc})")
                run.record(failed_record(_task(tasks, in_flight), "deepspeed", err))
                console.print(f"[red]{in_flight}[/]: ranks died twice; recorded as failed")
        stalled = 0 if len(read_results(run.results_path)) > before else stalled + 1
        if stalled >= MAX_LAUNCHES_WITHOUT_PROGRESS:
            err = RanksDied(f"{stalled} deepspeed launches in a row finished no task (last exit code {rc})")
            for task in _unrecorded(run):
                run.record(failed_record(task, "deepspeed", err))
            console.print(f"[red]stopping[/]: {err}; the tasks left are recorded as failed")
            break
        if _unrecorded(run):
            console.print(f"[yellow]ranks stopped[/] (exit code {rc}): relaunching for the tasks left")
    if end is not None and time.monotonic() >= end:  # like the planner's skips: retried by a resumed run
        err = TimeoutError("global deadline too close: task not started")
        for task in _unrecorded(run):
            run.record(failed_record(task, "budget", err, status="deadline"))
    return RunDir.open(opts.out, tasks, None)  # as a resumed run would see it


def _task(tasks: Sequence[Task], task_id: str) -> Task:
    return next(t for t in tasks if t.id == task_id)


def _unrecorded(run: RunDir) -> list[Task]:
    """Tasks with no record at all (not even a 'deadline' skip) in the run directory."""
    recorded = {rec.get("task_id") for rec in read_results(run.results_path)}
    return [t for t in run.tasks if t.id not in recorded]


def wait_launch(cmd: list[str], env: dict[str, str], left: float | None, port: int) -> int:
    """Run a deepspeed launcher command in its own process group, so that all ranks can be ended together; past the
    global deadline (plus a grace for the last stage to notice its own) end them: TIMED_OUT. The
    launch's shared-memory buffers are removed whichever way it ends."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    entry = (proc, port)
    _live.append(entry)
    try:
        return proc.wait(timeout=None if left is None else left + DEADLINE_GRACE_S)
    except subprocess.TimeoutExpired:
        stop_launched()
        proc.wait()
        return TIMED_OUT
    except BaseException:  # Ctrl-C or a hard stop of this process: do not leave ranks running
        stop_launched()
        raise
    finally:
        _live.remove(entry)
        _kill_group(proc)  # a rank the launcher left behind would keep its buffer mapped and in use
        remove_shm_buffers(port)


def stop_launched() -> None:
    """End every running launch and its ranks and remove their shared-memory buffers (the Kaggle
    watchdog calls this before a hard exit)."""
    for proc, port in list(_live):
        _kill_group(proc)
        remove_shm_buffers(port)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # already gone (the group is empty, or the id reused)
        pass


def remove_shm_buffers(port: int) -> list[Path]:
    """Remove this user's DeepSpeed allreduce buffers of the launch whose master port is `port`
    (/dev/shm/deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>); returns what was removed. The
    port tells one launch's buffers from those of any other launch running on the host."""
    if not SHM_DIR.is_dir():
        return []
    removed = []
    for path in SHM_DIR.iterdir():
        m = SHM_BUFFER.fullmatch(path.name)
        if m and int(m["uid"]) == os.getuid() and int(m["port"]) == port:
            try:
                path.unlink()
            except FileNotFoundError:  # removed meanwhile (another cleanup of the same launch)
                continue
            removed.append(path)
    return removed


def _unfinished_start(run: RunDir, since: int) -> str | None:
    """The task of this launch's last 'start' event (timeline.jsonl from byte `since`) that has no
    record: what the ranks were solving when they stopped."""
    path = run.path / "timeline.jsonl"
    if not path.exists():
        return None
    with open(path, "rb") as f:
        f.seek(since)
        lines = f.read().decode("utf-8", "replace").splitlines()
    last = None
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from a killed rank
            continue
        if event.get("event") == "start":
            last = event.get("task_id")
    recorded = {rec.get("task_id") for rec in read_results(run.results_path)}
    return last if last is not None and last not in recorded else None
