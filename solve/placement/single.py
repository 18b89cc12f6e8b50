"""placement.mode=single: one process, one model, one sandbox pool, tasks one after another."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.budget import BudgetPlanner
from solve.pipeline.report import task_line
from solve.pipeline.run import RunOptions, finish_run, one_task, progress_bar
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import Engine, solve_task
from solve.sandbox.pool import Sandbox


def run_single(
    cfg: RunConfig,
    tasks: Sequence[Task],
    opts: RunOptions,
    console: Console,
    engine: Engine | None = None,
    solve: Callable[..., dict[str, Any]] = solve_task,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` (resuming what is there) in this process."""
    run = RunDir.open(opts.out, tasks, cfg.model_dump(mode="json"))
    pending = run.pending()
    if run.done:
        console.print(f"resuming {opts.out}: {len(run.done)} task(s) done, {len(pending)} to go")
    planner = None
    if opts.global_deadline_s is not None:
        planner = BudgetPlanner.for_run(cfg, time.monotonic() + opts.global_deadline_s, opts.lanes)
        pending = planner.order(pending)
    if not pending:
        finish_run(run, console)
        return run
    engine = engine or Engine.load(cfg)
    with Sandbox(cfg.sandbox) as sandbox, progress_bar(console, opts.progress) as bar:
        run.note_isolation(sandbox.isolation)
        job = bar.add_task("tasks", total=len(pending), status="")
        for task in pending:
            bar.update(job, status=f"{task.id}")
            show = lambda stage, tid=task.id: bar.update(job, status=f"{tid}: {stage}")  # noqa: E731
            rec = one_task(task, cfg, engine, sandbox, planner, solve, run, opts, show)
            run.record(rec)
            bar.update(job, advance=1, status=f"{task.id}: {rec['status']}")
            console.print(task_line(rec), highlight=False, soft_wrap=True)
    finish_run(run, console)
    return run
