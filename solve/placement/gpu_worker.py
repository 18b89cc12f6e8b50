"""One `placement.mode=per_gpu` worker process: pinned to one device, loads the model once, solves
the tasks the main process sends it, one at a time, with the same `solve_task` as a single-process run.

Protocol over one duplex pipe (one pipe per worker, so a worker killed mid-message can only break
its own channel, never a queue other workers share):
    worker -> main: ("ready", info) | ("fatal", error) | ("stage", name) | ("done", task_id, record)
    main -> worker: ("task", task, seconds_left | None, train_steps | None, try_number) | ("stop",)
Nothing heavy is imported at module level: the device is pinned (CUDA_VISIBLE_DEVICES) before torch
loads, and a spawned child imports this module before it runs `worker_main`.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

# Test-only fault hook: a worker whose task id matches kills itself with SIGKILL when the task reaches
# its training stage, as the OOM killer or a segfault would. A comma-separated list of "<id>" (kill on
# every try) or "<id>@1" (first try only). Nothing else reads it.
KILL_ENV = "ARC_TTT_TEST_KILL_TASK"


def worker_main(slot: int, conn: Any, cfg_data: dict[str, Any], device: str, threads: int) -> None:
    """Entry point of the spawned process (device 'cpu' or 'cuda:N', N a physical index)."""
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
    try:
        engine = Engine.load(cfg)
        sandbox = Sandbox(cfg.sandbox)
    except Exception as e:  # reported to the main process, which decides whether to try another start
        conn.send(("fatal", error_record("worker_start", e)))
        return
    with sandbox:
        conn.send(("ready", {"slot": slot, "pid": os.getpid(), "device": device, "threads": threads}))
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
                rec = solve_task(task, cfg, engine, sandbox, deadline=deadline, train_steps=steps, on_stage=hook)
            except Exception as e:  # solve_task records its own failures; this is a bug outside any stage
                rec = failed_record(task, "pipeline", e, time.monotonic() - start)
            done += 1
            rec["worker"] = {"slot": slot, "pid": os.getpid(), "device": device, "task_number": done, "try": try_number}
            rec["worker"].update(peak_memory())
            conn.send(("done", task.id, rec))


def _stage_hook(conn: Any, task_id: str, try_number: int):
    kill = set(os.environ.get(KILL_ENV, "").split(","))

    def on_stage(name: str) -> None:
        conn.send(("stage", name))
        if name == "ttt" and kill & {task_id, f"{task_id}@{try_number}"}:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_stage
