"""`arc-ttt dsl ...`: the DSL program search on its own (coverage of a dataset)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from solve.cli.common import (
    DatasetOpt,
    DemoTasksOpt,
    LimitOpt,
    ShardOpt,
    SolutionsOpt,
    TaskIdsOpt,
    TasksOpt,
    console,
    fail,
    select_tasks,
)

dsl_app = typer.Typer(add_completion=False, no_args_is_help=True)


@dsl_app.command()
def coverage(
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    solutions: SolutionsOpt = None,
    task_ids: TaskIdsOpt = None,
    limit: LimitOpt = None,
    demo_tasks: DemoTasksOpt = 0,
    shard: ShardOpt = None,
    depth: Annotated[int, typer.Option("--depth", min=1, max=4, help="calls per program (1 = every single call)")] = 2,
    seconds: Annotated[float, typer.Option("--seconds", min=0.01, help="search budget per task")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="tasks searched in parallel (one core each)")] = 1,
    show: Annotated[str, typer.Option("--show", help="rows to print: solved, fits, all, none")] = "fits",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary and every task's row as one JSON object")] = False,
    out: Annotated[Optional[str], typer.Option("--out", help="also write the JSON to this file")] = None,
) -> None:
    """How many tasks the DSL program search solves (fits every train pair and gets the test outputs
    right with one of its first two distinct programs), per task the program found, and the time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from solve.dsl_search.coverage import coverage as run_coverage
    from solve.dsl_search.coverage import summary

    if show not in ("solved", "fits", "all", "none"):
        raise fail(f"--show must be solved, fits, all or none, got {show!r}")
    chosen, _ = select_tasks(dataset, tasks, solutions, task_ids, limit, demo_tasks, shard)
    if not chosen:
        raise fail("no tasks selected")
    with Progress(TextColumn("dsl search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[hits]}"),
                  console=console, disable=as_json, transient=True) as bar:
        job = bar.add_task("tasks", total=len(chosen), hits="")
        hits = [0]

        def done(row) -> None:
            hits[0] += bool(row.solved)
            bar.update(job, advance=1, hits=f"solved {hits[0]}")

        rows = run_coverage(chosen, depth, seconds, workers, done)
    report = {"dataset": dataset or str(tasks), "depth": depth, "seconds": seconds, "summary": summary(rows),
              "tasks": [r.to_dict() for r in rows]}
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1)
    if as_json:
        print(json.dumps(report))
        return
    for r in rows:
        if show == "all" or (show == "fits" and r.fits) or (show == "solved" and r.solved):
            mark = {True: "[green]solved[/]", False: "[red]wrong [/]", None: "[dim]?     [/]"}[r.solved] if r.fits else "[dim]none  [/]"
            console.print(f"{r.task_id}  {mark}  {r.seconds:6.2f}s  {r.program or ''}", highlight=False, soft_wrap=True)
    s = report["summary"]
    console.print(f"{s['solved']}/{s['tasks']} solved, {s['fits']} fit the train pairs (depth {depth}, {seconds:g} s per task, "
                  f"mean {s['seconds_mean']} s, max {s['seconds_max']} s)", highlight=False)


@dsl_app.command()
def corpus(
    dataset: Annotated[list[str], typer.Option("--dataset", help="a training dataset (repeatable); evaluation sets are refused")],
    out: Annotated[str, typer.Option("--out", help="directory for challenges.json, solutions.json, programs.jsonl")],
    depth: Annotated[int, typer.Option("--depth", min=1, max=4, help="calls per program")] = 2,
    seconds: Annotated[float, typer.Option("--seconds", min=0.01, help="search budget per task")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="tasks searched in parallel (one core each)")] = 1,
    limit: LimitOpt = None,
    views: Annotated[int, typer.Option("--views", min=0, help="augmented views per found task (turn/flip + colours), each with its verified program")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="draws the views")] = 0,
) -> None:
    """Real training tasks with programs: the DSL search over the clean tasks of training sets (no grid
    of an evaluation set); a program right on train and test makes a task of a pretraining corpus."""
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from solve.dsl_search.corpus import build_corpus

    try:
        with Progress(TextColumn("dsl corpus"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
            job = bar.add_task("tasks", total=None)
            report = build_corpus(dataset, out, depth, seconds, workers, lambda _tid, _ok: bar.update(job, advance=1),
                                  " ".join(["arc-ttt", *sys.argv[1:]]), limit, views, seed)
    except ValueError as e:
        raise fail(str(e)) from None
    excluded = ", ".join(f"{r['dataset']}: {r['excluded']} of {r['total']} excluded" for r in report["contamination"]["datasets"])
    console.print(f"{report['accepted']} of {report['searched']} clean tasks have a program right on train and test "
                  f"({excluded}), with {report['views']} augmented views ({report['views_conjugated']} conjugated by a turn); wrote {out}", highlight=False)
