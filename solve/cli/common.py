"""What every `arc-ttt` command shares: the console, the error exit, option types, config and task loading."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console

console = Console()


@contextlib.contextmanager
def json_stdout(enabled: bool = True) -> Iterator[Callable[[Any], None]]:
    """`--json`: stdout carries one JSON value and nothing else. Inside the block whatever else writes to
    stdout (our logs, rich, third-party prints and C libraries, e.g. DeepSpeed's accelerator line) goes to
    stderr; the yielded function writes the JSON to the real stdout. Not enabled: prints JSON as it is."""
    if not enabled:
        yield lambda obj: print(json.dumps(obj))
        return
    out = sys.stdout
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): redirect Python writes only
        fd = None
    if fd is None:
        with contextlib.redirect_stdout(sys.stderr):
            yield lambda obj: (out.write(json.dumps(obj) + "\n"), out.flush())
        return
    out.flush()
    saved = os.dup(fd)
    real = os.fdopen(os.dup(saved), "w")
    os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield lambda obj: (real.write(json.dumps(obj) + "\n"), real.flush())
    finally:
        out.flush()
        os.dup2(saved, fd)
        os.close(saved)
        real.close()

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="built-in dataset, e.g. arc-agi-1/evaluation")]
TasksOpt = Annotated[Optional[Path], typer.Option("--tasks", help="challenges JSON, a task JSON, or a directory of task JSONs")]
SolutionsOpt = Annotated[Optional[Path], typer.Option("--solutions", help="solutions JSON for --tasks (Kaggle format)")]
TaskIdsOpt = Annotated[Optional[str], typer.Option("--task-ids", help="comma-separated task ids")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", help="at most this many tasks")]
DemoTasksOpt = Annotated[int, typer.Option("--demo-tasks", help="pick the first N tasks (by id) whose grids are all <= 6x6 (CPU demo)")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="i/n: only the i-th of n interleaved slices of the tasks (merge later)")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config (values only)")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="config override, e.g. train.steps=16 (repeatable)")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="local: this machine, with the config's placement; ray: (run, task) units on Ray actors (docs/cluster.md)")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="--executor ray: the cluster (host:port or ray://host:port); default auto: the running cluster, "
    "else a local instance; 'local': always a local instance")]


def check_executor(executor: str, cfgs) -> None:
    """Refuse an unknown --executor, or a config that --executor ray cannot run, before anything is written."""
    if executor not in ("local", "ray"):
        raise fail(f"--executor {executor!r}: expected local or ray")
    if executor == "ray":
        from solve.placement.dispatch import check_ray_config
        from solve.placement.ray_actors import RayExecutorError, import_ray

        try:
            for cfg in cfgs:
                check_ray_config(cfg)
            import_ray()
        except (RayExecutorError, ValueError) as e:
            raise fail(str(e)) from None


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the exit (status 2) for the caller to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


def load_config_or_fail(config: Path | None, overrides: list[str] | None):
    from solve.pipeline.runconfig import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as e:
        raise fail(str(e)) from None


def load_one(dataset: str | None, tasks: Path | None, task_id: str):
    """One task by id from a dataset or a tasks file."""
    from augment.tasks import TaskError, load_tasks, select

    try:
        loaded = load_tasks(dataset, tasks)
        return select(loaded.tasks, [task_id])[0]
    except TaskError as e:
        raise fail(str(e)) from None


def parse_shard(shard: str) -> tuple[int, int]:
    i, _, n = shard.partition("/")
    if not (i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise fail(f"--shard {shard!r} must be i/n with 0 <= i < n")
    return int(i), int(n)


def select_tasks(dataset, tasks, solutions, task_ids, limit, demo_tasks, shard, unloadable: bool = False):
    """The tasks a command runs on, and the load result (its issues are printed here).

    unloadable=True (commands that write a submission) keeps every id of the source: a task that does
    not load is selected as an `UnloadableTask`, which the run records as failed with placeholders."""
    from augment.tasks import TaskError, choose_tasks, load_tasks

    try:
        loaded = load_tasks(dataset, tasks, solutions)
    except TaskError as e:
        raise fail(str(e)) from None
    verdict = "cannot load (kept with placeholder attempts, recorded as failed)" if unloadable else "skipped"
    for issue in loaded.issues:
        console.print(f"[yellow]{verdict}[/] {issue.source}: task {issue.task_id}: {issue.problem}", highlight=False)
    pool = loaded.with_unloadable() if unloadable else loaded.tasks
    try:
        chosen = choose_tasks(pool, task_ids, limit, demo_tasks, parse_shard(shard) if shard else None)
    except TaskError as e:
        raise fail(str(e)) from None
    if not chosen:
        raise fail("no tasks selected")
    return chosen, loaded
