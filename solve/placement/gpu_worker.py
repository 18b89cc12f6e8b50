"""One `placement.mode=per_gpu` worker process: pinned to one device, loads the model once, solves
the tasks the main process sends it, one at a time, with the same `solve_task` as a single-process run.

Started by solve.placement.per_gpu as `python -m solve.placement.gpu_worker FD PARENT_PID` in a session
of its own (so the main process can kill it and anything it starts as one process group), with
stdout/stderr going to DIR/worker-N.log (so that a worker the kernel cannot kill, stuck in a driver
call, does not hold the notebook's output pipe open), and with FD its end of a duplex pipe.

Protocol over that pipe (one pipe per worker, so a worker killed mid-message can only break its own
channel, never a queue other workers share):
    main -> worker: ("init", slot, cfg_data, device, threads, run_dir) first, then
                    ("task", task, seconds_left | None, train_steps | None, try_number) | ("stop",)
    worker -> main: ("ready", info) | ("fatal", error) | ("stage", name) | ("done", task_id, record)
With `placement.stagger_starts` the worker asks for its turn to load the model and waits for it:
    worker -> main: ("load_wait",), then main -> worker: ("load",) (or ("stop",): it exits)
and it always reports its load, before it starts its sandbox: worker -> main: ("loaded", {"start", "end"}).
Nothing heavy is imported at module level: the device is pinned (CUDA_VISIBLE_DEVICES) before torch
loads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

# Test-only fault hooks, read by no other code. Each is a comma-separated list of "<id>" (every try) or
# "<id>@<try>" (that try only), checked when the task reaches its training stage:
#   KILL_ENV: the worker kills itself with SIGKILL, as the OOM killer or a segfault would;
#   HANG_ENV: the worker blocks forever and ignores SIGTERM, as one stuck in a CUDA call does.
KILL_ENV = "ARC_TTT_TEST_KILL_TASK"
HANG_ENV = "ARC_TTT_TEST_HANG_TASK"
# Test-only, any value: the first worker of the run directory to begin loading the model SIGKILLs itself
# (KILL_LOAD_ENV) or blocks forever ignoring SIGTERM (HANG_LOAD_ENV), once; later starts load normally.
KILL_LOAD_ENV = "ARC_TTT_TEST_KILL_LOAD"
HANG_LOAD_ENV = "ARC_TTT_TEST_HANG_LOAD"
LOAD_FAULT_FILE = ".test-load-fault"  # created in the run directory by the worker that takes the fault
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the started process: `python -m solve.placement.gpu_worker FD PARENT_PID`."""
    from multiprocessing.connection import Connection

    fd, parent = (int(a) for a in (sys.argv[1:] if argv is None else argv))
    _die_with_parent(parent)
    conn = Connection(fd)
    try:
        _, slot, cfg_data, device, threads, run_dir = conn.recv()
    except EOFError:  # the main process is gone before it said what to do
        return
    worker_main(slot, conn, cfg_data, device, threads, run_dir)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the main process dies, however it dies (the Kaggle
    watchdog's os._exit, an OOM kill): an orphaned worker would hold its GPU and keep solving."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the main process kills its workers itself
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def worker_main(slot: int, conn: Any, cfg_data: dict[str, Any], device: str, threads: int, run_dir: str | None = None) -> None:
    """Entry point of the spawned process (device 'cpu' or 'cuda:N', N a physical index); `run_dir`
    receives each task's candidates file (the main process writes everything else)."""
    if device.startswith("cuda"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]  # before torch initializes CUDA
    import torch

    from solve.pipeline.peak_memory import peak_memory, reset_peak_memory
    from solve.pipeline.runconfig import config_from_dict
    from solve.pipeline.stages import Engine, error_record, failed_record, solve_task
    from solve.sandbox.pool import Sandbox

    torch.set_num_threads(threads)
    cfg = config_from_dict(cfg_data)
    local = "cuda:0" if device.startswith("cuda") else "cpu"  # the one visible GPU, or the CPU
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": local})})
    # The heavy imports come before the (staggered) load: seconds of CPU each, not the model's RAM, so workers
    # overlap them; then only the load itself waits for its turn.
    import peft  # noqa: F401  (ttt.lora's)
    from transformers import AutoModelForCausalLM  # noqa: F401  (ttt.models')

    asked = time.time()
    if cfg.placement.stagger_starts:  # one worker loads at a time: wait for the main process to say it is our turn
        conn.send(("load_wait",))
        try:
            if conn.recv()[0] != "load":  # ("stop",): the run is ending
                return
        except EOFError:  # the main process is gone
            return
    try:
        start = time.time()
        _load_fault(run_dir)
        engine = Engine.load(cfg)
        end = time.time()
        conn.send(("loaded", {"start": start, "end": end}))
        waited = f" after waiting {start - asked:.1f} s for its turn" if cfg.placement.stagger_starts else ""
        print(f"worker {slot}: model loaded in {end - start:.1f} s{waited}", flush=True)
        sandbox = Sandbox(cfg.sandbox)
    except Exception as e:  # reported to the main process, which decides whether to try another start
        conn.send(("fatal", error_record("worker_start", e)))
        return
    with sandbox:
        conn.send(("ready", {"slot": slot, "pid": os.getpid(), "device": device, "threads": threads, "isolation": sandbox.isolation}))
        done = 0
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the main process is gone: nobody to report to
                return
            if msg[0] == "stop":
                return
            _, task, seconds_left, steps, try_number = msg
            deadline = None if seconds_left is None else time.monotonic() + seconds_left
            reset_peak_memory()
            hook = _stage_hook(conn, task.id, try_number)
            start = time.monotonic()
            try:
                rec = solve_task(task, cfg, engine, sandbox, deadline=deadline, train_steps=steps, on_stage=hook,
                                 artifacts_dir=None if run_dir is None else Path(run_dir))
            except Exception as e:  # solve_task records its own failures; this is a bug outside any stage
                rec = failed_record(task, "pipeline", e, time.monotonic() - start)
            done += 1
            rec["worker"] = {"slot": slot, "pid": os.getpid(), "device": device, "task_number": done, "try": try_number}
            rec["worker"].update(peak_memory())
            conn.send(("done", task.id, rec))


def _load_fault(run_dir: str | None) -> None:
    """The test-only load faults (KILL_LOAD_ENV, HANG_LOAD_ENV): taken by the first worker to get here."""
    kill, hang = os.environ.get(KILL_LOAD_ENV), os.environ.get(HANG_LOAD_ENV)
    if not (kill or hang) or run_dir is None:
        return
    try:
        os.close(os.open(Path(run_dir) / LOAD_FAULT_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker took it
        return
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it, as with a stuck driver call
    while True:
        time.sleep(3600)


def _stage_hook(conn: Any, task_id: str, try_number: int) -> Callable[[str], None]:
    keys = {task_id, f"{task_id}@{try_number}"}
    kill = keys & set(os.environ.get(KILL_ENV, "").split(","))
    hang = keys & set(os.environ.get(HANG_ENV, "").split(","))

    def on_stage(name: str) -> None:
        conn.send(("stage", name))
        if name == "ttt" and kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if name == "ttt" and hang:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it, as with a stuck driver call
            while True:
                time.sleep(3600)

    return on_stage


if __name__ == "__main__":
    main()
