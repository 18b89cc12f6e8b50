"""The `arc-ttt` command line. Each command parses options, calls library code, and prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from solve.cli.common import (
    DatasetOpt,
    ExecutorOpt,
    RayAddressOpt,
    SetOpt,
    SolutionsOpt,
    TasksOpt,
    check_executor,
    console,
    fail,
    json_stdout,
    load_config_or_fail,
    load_one,
    select_tasks,
)
from solve.cli.noise import LOG_NAME, redirect_noise, route_noise

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Per-task test-time training for ARC-AGI.")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show third-party warnings and logs (always in the log file)")] = False,
) -> None:
    """Per-task test-time training for ARC-AGI: augment, adapt, write programs, verify, vote."""
    route_noise(verbose)


@app.command()
def augment(
    task: Annotated[str, typer.Option("--task", help="task id")],
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    set_name: Annotated[str, typer.Option("--set", help="augmentation set")] = "geometric+color",
    n: Annotated[int, typer.Option("--n", help="samples to build (at least)")] = 8,
    seed: int = 0,
    permute_background: Annotated[bool, typer.Option(help="also permute color 0")] = False,
    show: Annotated[int, typer.Option(help="how many samples to print (0 = all)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the report and augmentations as JSON")] = False,
) -> None:
    """Build leave-one-out training samples for one task and print them as grids."""
    import numpy as np

    from augment.loo import build_samples
    from augment.render import grids_row
    from augment.sets import get_set

    t = load_one(dataset, tasks, task)
    try:
        spec = get_set(set_name)
    except ValueError as e:
        raise fail(str(e)) from None
    samples, report = build_samples(t, spec, n, np.random.default_rng(seed), permute_background)
    if as_json:
        out = report.to_dict() | {"task": t.id, "samples": [{"augmentation": s.augmentation.name, "held_out": s.held_out} for s in samples]}
        print(json.dumps(out))
        return
    for i, s in enumerate(samples[: show or len(samples)]):
        console.rule(f"sample {i}: held-out pair {s.held_out}, {s.augmentation.name}")
        grids = [g for j, p in enumerate(s.context) for g in ((f"ctx{j} in", p.input), (f"ctx{j} out", p.output))]
        console.print(grids_row(grids + [("query", s.query), ("target", s.target)]))
    console.print(f"task {t.id}, set '{spec.name}': generated {report.generated}, kept {report.kept}, dropped {report.dropped or 0}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")


@app.command()
def run(
    out: Annotated[Path, typer.Option("--out", help="run directory (created, or resumed)")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (values only)")] = None,
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    solutions: SolutionsOpt = None,
    task_ids: Annotated[Optional[str], typer.Option("--task-ids", help="comma-separated task ids")] = None,
    limit: Annotated[Optional[int], typer.Option(help="at most this many tasks")] = None,
    demo_tasks: Annotated[int, typer.Option(help="pick the first N tasks (by id) whose grids are all <= 6x6 (CPU demo)")] = 0,
    shard: Annotated[Optional[str], typer.Option(help="i/n: run the i-th of n interleaved slices of the task list")] = None,
    deadline: Annotated[Optional[float], typer.Option(help="global deadline in seconds from now (budget planner)")] = None,
    overrides: SetOpt = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Solve tasks end to end into DIR/submission.json (resumable)."""
    from solve.pipeline.run import RunOptions
    from solve.pipeline.rundir import RunDirError
    from solve.placement.dispatch import run_tasks
    from solve.placement.ray_actors import RayExecutorError

    cfg = load_config_or_fail(config, overrides)
    check_executor(executor, [cfg])
    chosen, _ = select_tasks(dataset, tasks, solutions, task_ids, limit, demo_tasks, shard, unloadable=True)
    redirect_noise(out / LOG_NAME)
    console.print(f"{len(chosen)} task(s): {', '.join(t.id for t in chosen[:8])}{' ...' if len(chosen) > 8 else ''}")
    try:
        run_tasks(cfg, chosen, RunOptions(out=out, global_deadline_s=deadline, progress=progress), console,
                  executor=executor, ray_address=ray_address)
    except (RunDirError, RayExecutorError) as e:  # locked by another run, holding another config's results; no Ray cluster
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: {out}/submission.json is valid; run the same command to resume")
        raise typer.Exit(130) from None


@app.command()
def score(
    submission: Annotated[Path, typer.Option("--submission", help="submission.json")],
    solutions: Annotated[Optional[Path], typer.Option("--solutions", help="solutions JSON (Kaggle format)")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="or: a built-in dataset's solutions")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The official score of a submission: per task, the fraction of test inputs with an exact attempt."""
    from augment.tasks import TaskError, load_dataset
    from solve.select.submission import score as score_fn

    try:
        sub = json.loads(submission.read_text())
        if dataset:
            sols = [t for t in load_dataset(dataset).tasks if t.id in sub]  # the run's tasks only
        elif solutions:
            sols = json.loads(solutions.read_text())
        else:
            raise fail("give --solutions FILE or --dataset NAME")
        report = score_fn(sub, sols)
    except (OSError, json.JSONDecodeError, TaskError, ValueError) as e:
        raise fail(f"{submission}: {e}") from None
    data = report.to_json()
    if as_json:
        print(json.dumps(data))
        return
    from rich.table import Table

    table = Table(title=f"score of {submission}")
    table.add_column("task")
    table.add_column("score")
    for tid, v in data["per_task"].items():
        table.add_row(tid, f"{v:.2f}")
    console.print(table)
    console.print(f"[bold]{report.summary()}[/]")


@app.command("verify")
def verify_cmd(
    programs: Annotated[list[Path], typer.Argument(help="Python files defining transform(grid)")],
    task: Annotated[Optional[str], typer.Option("--task", help="task id")] = None,
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    timeout_s: Annotated[float, typer.Option(help="wall-clock seconds per grid")] = 2.0,
) -> None:
    """Run your programs against a task's pairs in the sandbox and show each one's per-pair outcome."""
    from solve.sandbox.config import SandboxConfig
    from solve.sandbox.pool import Sandbox
    from solve.sandbox.verify import pair_outcomes

    if task is None:
        from augment.tasks import TaskError, load_tasks

        try:
            loaded = load_tasks(dataset, tasks)
        except TaskError as e:
            raise fail(str(e)) from None
        if len(loaded.tasks) != 1:
            raise fail(f"--task is required: the source holds {len(loaded.tasks)} tasks")
        t = loaded.tasks[0]
    else:
        t = load_one(dataset, tasks, task)
    try:
        sources = [(str(p), p.read_text()) for p in programs]
    except OSError as e:
        raise fail(f"cannot read program: {e}") from None
    grids = [p.input for p in t.train] + list(t.test_inputs)
    with Sandbox(SandboxConfig(workers=min(len(sources), 2), timeout_s=timeout_s)) as sandbox:
        records = sandbox.run(sources, grids)
    out = [
        {"program": r.program_id, "error": r.error, "seconds": round(r.seconds, 4), "pairs": pair_outcomes(t, r), "stdout": r.stdout}
        for r in records
    ]
    if as_json:
        print(json.dumps({"task": t.id, "programs": out}))
        return
    from rich.table import Table

    table = Table(title=f"task {t.id}")
    table.add_column("program")
    for name in [row["grid"] for row in out[0]["pairs"]]:
        table.add_column(name)
    table.add_column("program error")
    colors = {"correct": "green", "wrong": "red", "ran": "cyan"}
    for r in out:
        cells = [f"[{colors.get(c['outcome'], 'yellow')}]{c['outcome']}[/]" for c in r["pairs"]]
        table.add_row(r["program"], *cells, r["error"] or "")
    console.print(table)


# `arc-ttt adapt` without --config on a machine without a GPU: short micro-batches and few steps, so one
# small task takes about a minute on 2 cores (the schema's defaults are sized for a GPU).
CPU_ADAPT_DEFAULTS = ("train.max_seq_len=1024", "train.batch_tokens=1024", "train.steps=8", "augment.n_samples=16")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@app.command("adapt")
def adapt_cmd(
    task: Annotated[str, typer.Option("--task", help="task id")],
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (model, lora, augment, train)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="training steps (overrides train.steps)")] = None,
    leave_one_out: Annotated[bool, typer.Option(help="also hold out each train pair in turn and score it")] = False,
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Test-time train on one task; show the loss curve and the NLL of the true test output before/after."""
    from solve.cli.adapt_report import render_adapt_report
    from ttt.holdout import adapt_command
    from ttt.models import ModelResolutionError

    cpu = [] if config is not None or _has_gpu() else list(CPU_ADAPT_DEFAULTS)  # minutes, not hours, on a laptop
    cfg = load_config_or_fail(config, cpu + (overrides or []) + ([f"train.steps={steps}"] if steps is not None else []))
    t = load_one(dataset, tasks, task)
    with json_stdout(as_json) as emit:
        try:
            report = adapt_command(
                t, cfg.model, cfg.lora, cfg.train, cfg.augment.set, cfg.augment.n_samples, cfg.run.seed, leave_one_out
            )
        except ModelResolutionError as e:
            raise fail(str(e)) from None
        if as_json:
            emit(report)
    if not as_json:
        console.print(render_adapt_report(report), highlight=False)


def _register_more() -> None:
    """Commands that live in their own modules (kept light to import)."""
    from solve.cli.experiments import ablate, bench, merge, sweep
    from solve.cli.kaggle import kaggle_app
    from solve.cli.plan_memory import plan
    from solve.cli.prior import pretrain, synth

    for fn in (ablate, sweep, merge, bench, synth, pretrain, plan):
        app.command()(fn)
    from solve.cli.show import show

    app.command()(show)
    app.add_typer(kaggle_app, name="kaggle", help="The offline Kaggle kernel: bundle, export-model, rehearse, run, timeline.")
    from solve.cli.dsl import dsl_app

    app.add_typer(dsl_app, name="dsl", help="The DSL program search on its own: coverage of a dataset.")


_register_more()


def main() -> None:
    """The `arc-ttt` console script."""
    app()


if __name__ == "__main__":
    main()
