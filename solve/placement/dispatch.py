"""The one entry point every caller uses to run tasks: it picks the placement named by the config.

`placement.mode`: single (this process: solve.placement.single), per_gpu (one worker process per
device: solve.placement.per_gpu) or deepspeed (ranks of a `deepspeed` launch: solve.placement.ds_rank).
A caller's own `engine` or `solve` function keeps the run in this process (tests, benchmarks).
`executor="ray"` (`--executor ray`) runs the tasks on Ray actors instead (solve.placement.ray_actors);
the config's single or per_gpu placement then describes one actor's work, which is a single process's.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import Engine, solve_task

RAY_LOG = "ray.log"  # under the run (or experiment) directory: Ray's driver-side log lines with --executor ray


def run_tasks(
    cfg: RunConfig,
    tasks: Sequence[Task],
    opts: RunOptions,
    console: Console | None = None,
    engine: Engine | None = None,
    solve: Callable[..., dict[str, Any]] = solve_task,
    executor: str = "local",
    ray_address: str | None = None,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` (resuming what is there)."""
    console = console or Console()
    mode = cfg.placement.mode
    if executor == "ray":
        check_ray_config(cfg)
        if engine is not None or solve is not solve_task:
            raise ValueError("executor ray runs the standard pipeline in its actors: no engine or solve function of the caller's")
        from solve.placement.ray_actors import RayJob, run_ray

        return run_ray([RayJob(cfg, tasks, opts)], console, ray_address, opts.progress, opts.out / RAY_LOG)[0]
    if executor != "local":
        raise ValueError(f"executor {executor!r}: expected 'local' or 'ray'")
    if mode == "per_gpu" and engine is None and solve is solve_task:
        from solve.placement.per_gpu import run_per_gpu

        return run_per_gpu(cfg, tasks, opts, console)
    if mode == "deepspeed" and engine is None and solve is solve_task:
        from solve.placement.ds_rank import run_deepspeed

        return run_deepspeed(cfg, tasks, opts, console)
    from solve.placement.single import run_single

    return run_single(cfg, tasks, opts, console, engine, solve)


def check_ray_config(cfg: RunConfig) -> None:
    """Refuse what a Ray actor cannot run: it is one process, so deepspeed's ranks have no place in it."""
    if cfg.placement.mode == "deepspeed":
        raise ValueError("--executor ray runs each task in one actor (one process); placement.mode deepspeed needs "
                         "--executor local")
