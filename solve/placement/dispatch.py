"""The one entry point every caller uses to run tasks: it picks the placement named by the config.

`placement.mode`: single (this process: solve.placement.single), per_gpu (one worker process per
device: solve.placement.per_gpu) or deepspeed (ranks of a `deepspeed` launch: solve.placement.ds_rank).
A caller's own `engine` or `solve` function keeps the run in this process (tests, benchmarks).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import Engine, solve_task


def run_tasks(
    cfg: RunConfig,
    tasks: Sequence[Task],
    opts: RunOptions,
    console: Console | None = None,
    engine: Engine | None = None,
    solve: Callable[..., dict[str, Any]] = solve_task,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` (resuming what is there)."""
    console = console or Console()
    mode = cfg.placement.mode
    if mode == "per_gpu" and engine is None and solve is solve_task:
        from solve.placement.per_gpu import run_per_gpu

        return run_per_gpu(cfg, tasks, opts, console)
    if mode == "deepspeed" and engine is None and solve is solve_task:
        from solve.placement.ds_rank import run_deepspeed

        return run_deepspeed(cfg, tasks, opts, console)
    from solve.placement.single import run_single

    return run_single(cfg, tasks, opts, console, engine, solve)
