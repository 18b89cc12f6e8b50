"""CLI commands `ablate`, `sweep`, `merge` and `bench`, as plain typer-annotated functions.

`ablate` and `sweep` run every point (once per seed with `--seeds`) as a resumable run directory
under --out, sharing trained adapters through DIR/adapters, then write the tables and plots
(solve/experiments/plan.py, tables.py; docs/experiments.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from solve.cli.common import ExecutorOpt, RayAddressOpt

Dataset = Annotated[Optional[str], typer.Option("--dataset", help="built-in dataset, e.g. arc-agi-1/evaluation")]
Tasks = Annotated[Optional[Path], typer.Option("--tasks", help="challenges JSON, a task JSON, or a directory of task JSONs")]
Solutions = Annotated[Optional[Path], typer.Option("--solutions", help="solutions JSON for --tasks (Kaggle format)")]
TaskIds = Annotated[Optional[str], typer.Option("--task-ids", help="comma-separated task ids")]
Limit = Annotated[Optional[int], typer.Option("--limit", help="at most this many tasks")]
DemoTasks = Annotated[int, typer.Option("--demo-tasks", help="pick the first N tasks whose grids are all <= 10x10")]
Shard = Annotated[Optional[str], typer.Option("--shard", help="i/n: only the i-th of n interleaved slices of the tasks (merge later)")]
Config = Annotated[Optional[Path], typer.Option("--config", help="YAML config (values only)")]
Overrides = Annotated[Optional[list[str]], typer.Option("--set", help="config override for every point, e.g. train.steps=16 (repeatable)")]
Out = Annotated[Path, typer.Option("--out", help="experiment directory (created, or resumed)")]
Progress = Annotated[bool, typer.Option(help="show a progress bar per point")]
Seeds = Annotated[Optional[str], typer.Option(
    "--seeds", help="comma-separated seeds, e.g. 0,1,2: every point runs once per seed (run.seed and train.seed); the "
    "tables give mean and spread over seeds and paired differences against the first point (default: the config's seed)")]


def _seed_list(seeds: str | None, overrides: list[str] | None, points: list) -> list[int]:
    """The --seeds list; refused with a run.seed given by --set or --param too (which would win is unclear)."""
    from solve.cli.common import fail
    from solve.experiments.plan import canonical_key, parse_seeds

    try:
        parsed = parse_seeds(seeds)
    except ValueError as e:
        raise fail(str(e)) from None
    keys = [canonical_key(o.partition("=")[0]) for o in [*(overrides or []), *(o for p in points for o in p.overrides)]]
    if parsed and "run.seed" in keys:
        raise fail("--seeds sets run.seed for every run; drop run.seed from --set/--param")
    return parsed


def _run_experiment(kind, points, cfgs, config, overrides, dataset, tasks, solutions, task_ids, limit, demo_tasks, shard,
                    out, progress, params=(), seeds=None, executor="local", ray_address=None):
    from solve.cli.common import check_executor, console, fail, select_tasks
    from solve.experiments.plan import ExperimentError, Manifest, check_points, run_points
    from solve.experiments.tables import write_tables
    from solve.pipeline.rundir import RunDirError
    from solve.placement.ray_actors import RayExecutorError

    check_executor(executor, cfgs)
    seed_list = _seed_list(seeds, overrides, points)
    chosen, _ = select_tasks(dataset, tasks, solutions, task_ids, limit, demo_tasks, shard)
    per_seed = f" x {len(seed_list)} seed(s)" if seed_list else ""
    console.print(f"{kind}: {len(points)} point(s){per_seed} x {len(chosen)} task(s) into {out}")
    try:
        check_points(points, cfgs, out, seed_list)  # before the manifest: a refused command must leave DIR as it was
    except ExperimentError as e:
        raise fail(str(e)) from None
    manifest = Manifest(kind, points, [t.id for t in chosen], list(params), str(config) if config else None,
                        list(overrides or []), shard, seeds=seed_list)
    manifest.write(out)  # before running: an interrupted experiment can still be tabulated or merged
    try:
        run_points(points, cfgs, chosen, out, console, progress, seeds=seed_list, executor=executor, ray_address=ray_address)
    except (RunDirError, RayExecutorError) as e:  # a run directory locked by another run; no Ray cluster
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: run the same command to resume {out}")
        raise typer.Exit(130) from None
    paths = write_tables(out, manifest)
    print(paths["md"].read_text())  # plain print: rich would wrap the table's rows
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def ablate(
    out: Out,
    config: Config = None,
    dataset: Dataset = None,
    tasks: Tasks = None,
    solutions: Solutions = None,
    task_ids: TaskIds = None,
    limit: Limit = None,
    demo_tasks: DemoTasks = 0,
    shard: Shard = None,
    sets: Annotated[str, typer.Option("--sets", help="comma-separated augmentation sets, one point each")] = "none,geometric,color,geometric+color,all",
    overrides: Overrides = None,
    progress: Progress = True,
    seeds: Seeds = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the pipeline once per augmentation set on the same tasks and seeds; table and plot in DIR."""
    from solve.cli.common import fail
    from solve.experiments.plan import ablation_points, point_configs
    from solve.pipeline.runconfig import ConfigError

    names = [s.strip() for s in sets.split(",") if s.strip()]
    if not names:
        raise fail("--sets is empty")
    if any(o.strip().startswith("augment.set=") for o in overrides or []):
        raise fail("--set augment.set=... would be overridden by every point; use --sets")
    points = ablation_points(names)
    try:
        cfgs = point_configs(config, overrides or [], points)
    except ConfigError as e:
        raise fail(str(e)) from None
    _run_experiment("ablation", points, cfgs, config, overrides, dataset, tasks, solutions, task_ids, limit, demo_tasks,
                    shard, out, progress, seeds=seeds, executor=executor, ray_address=ray_address)


def sweep(
    out: Out,
    params: Annotated[list[str], typer.Option("--param", help="dotted key and values, e.g. train.steps=0,8,16 (repeatable: grid)")],
    config: Config = None,
    dataset: Dataset = None,
    tasks: Tasks = None,
    solutions: Solutions = None,
    task_ids: TaskIds = None,
    limit: Limit = None,
    demo_tasks: DemoTasks = 0,
    shard: Shard = None,
    overrides: Overrides = None,
    progress: Progress = True,
    seeds: Seeds = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the pipeline at every point of a grid of config values; score and NLL against time per task."""
    from solve.cli.common import fail
    from solve.experiments.plan import sweep_plan
    from solve.pipeline.runconfig import ConfigError

    try:
        points, cfgs = sweep_plan(config, overrides or [], params)
    except ConfigError as e:
        raise fail(str(e)) from None
    _run_experiment("sweep", points, cfgs, config, overrides, dataset, tasks, solutions, task_ids, limit, demo_tasks,
                    shard, out, progress, list(points[0].values), seeds, executor, ray_address)


def merge(
    dirs: Annotated[list[Path], typer.Argument(help="run directories, or experiment directories (ablate/sweep outputs)")],
    out: Annotated[Path, typer.Option("--out", help="merged directory (must not hold results yet)")],
    dataset: Dataset = None,
    tasks: Tasks = None,
    solutions: Solutions = None,
    task_ids: TaskIds = None,
    limit: Limit = None,
    demo_tasks: DemoTasks = 0,
    keep_first: Annotated[bool, typer.Option("--keep-first", help="on conflicting duplicates keep the first directory's record")] = False,
) -> None:
    """Combine shards into one results set: results.jsonl, submission.json, report.md (and tables for experiments)."""
    from solve.cli.common import console, fail, select_tasks
    from solve.experiments.merge import MergeError, merge_experiments, merge_runs, write_merged, write_merged_experiment
    from solve.experiments.plan import is_experiment

    source = None
    if dataset or tasks:
        source, _ = select_tasks(dataset, tasks, solutions, task_ids, limit, demo_tasks, None)
    kinds = {is_experiment(d) for d in dirs}
    if len(kinds) > 1:
        raise fail("give either run directories or experiment directories, not both")
    try:
        if kinds == {True}:
            manifest, merged = merge_experiments(dirs, source)
            parts = list(merged.values())
        else:
            m = merge_runs(dirs, source)
            parts = [m]
        conflicts = [c for p in parts for c in p.conflicts]
        for p in parts:
            for d in p.config_differences:
                console.print(f"[yellow]warning:[/] inputs differ in config: {d}", highlight=False)
        for c in conflicts:
            console.print(f"[red]conflict:[/] {c}", highlight=False)
        if conflicts and not keep_first:
            raise fail(f"{len(conflicts)} conflicting duplicate(s); nothing written (--keep-first keeps the first)")
        if kinds == {True}:
            paths = write_merged_experiment(manifest, merged, out)
            console.print("wrote " + ", ".join(str(p) for p in paths.values()))
        else:
            write_merged(m, out)
    except MergeError as e:
        raise fail(str(e)) from None
    for p in parts:
        dups = len(p.duplicates)
        miss = f", {len(p.missing)} missing (placeholders)" if p.missing else ""
        console.print(f"merged {len(p.records)} task(s) from {len(p.sources)} dir(s){miss}; {dups} identical duplicate(s)")
    console.print(f"out: {out}")


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="fewer tasks, steps and tokens (a few minutes on 2 idle cores instead of ~15)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the measurements as JSON")] = False,
) -> None:
    """Throughput of every part on this machine, in one table: augment, sandbox, TTT, generation, one task."""
    from solve.cli.common import console, json_stdout
    from solve.experiments.bench import format_table, run_all

    with json_stdout(as_json) as emit:
        result = run_all(quick=quick, log=lambda msg: console.print(f"[dim]{msg}[/]"))
        if as_json:
            emit(result)
    if not as_json:
        print(format_table(result))
