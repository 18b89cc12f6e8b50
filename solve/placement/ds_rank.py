"""`placement.mode=deepspeed`: one task at a time, trained data-parallel across all ranks with ZeRO.

Launch (every rank runs the same command; rank 0 is the only writer of the run directory):

    deepspeed --num_gpus N --no_local_rank --module solve.placement.ds_rank \\
        --config configs/deepspeed-cpu.yaml --out runs/ds --dataset arc-agi-1/evaluation --demo-tasks 4

`python -m solve.placement.ds_rank ARGS` is `arc-ttt run ARGS`; `arc-ttt run` with placement.mode=deepspeed comes
here (run_tasks dispatches). Without a launcher (no RANK in the environment) a process starts the
launcher itself when it wants more than one rank (`placement.ranks`, or one per GPU: solve.placement.ds_launch),
else it runs as the only rank.

Per task, on every rank: the same augment, `ttt.train.adapt` through a `ttt.ds.DeepSpeedRunner` (each
rank takes its share of each step's micro-batches; ZeRO all-reduces the gradients), then each rank
samples programs and grids for its share of the views; rank 0 gathers them, verifies in its sandbox,
scores, votes and records. The per-task code is `solve.pipeline.stages.solve_task`; this module only wraps
each stage so that ranks agree before it (deadline) and after it (did any rank fail).

Faults: training collectives (the default group) time out after `placement.train_collective_timeout_s`,
the gathers of samples and candidates and the stage agreements after `placement.collective_timeout_s`,
instead of hanging. An out-of-memory error in training is agreed by all ranks, which skip the step and
halve the micro-batch tokens together (`ttt.train.train_step`). A stage that
fails on any rank fails the task on all ranks, and rank 0 records it with that rank's error. When the
failed stage holds collectives (ttt, induction, transduction) the ranks may be out of step in the
training process group, so the run then stops cleanly: everything finished is recorded, the
submission is valid, the ranks exit with status 0 without tearing the group down (its teardown can
abort on the pending collective), and the same command resumes after the failed task (solve.placement.ds_launch
does that itself). A rank that dies outright
makes the `deepspeed` launcher end the others (rerun to resume).

ZeRO-3 (`placement.zero_stage=3`) partitions the model as it loads and runs sampling and scoring in
lockstep across ranks: see `ttt.ds`. CPU (DeepSpeed 0.19.8, DS_ACCELERATOR=cpu, gloo): ZeRO-2 and
ZeRO-3, 1 and 2 ranks, tested.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from augment.tasks import Task
from solve.pipeline.budget import task_deadline
from solve.pipeline.run import RunOptions, begin_task, end_task, finish_run
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import DeadlineReached, Engine, error_record, failed_record, solve_task, stages_for

# Test-only fault hook: "<rank>:<task id>" makes that rank raise at the start of the task's ttt stage;
# "<rank>:<task id>:die" makes it exit there at once, as a crash (segfault, OOM kill) would.
FAIL_ENV = "ARC_TTT_TEST_FAIL_RANK"
COLLECTIVE_STAGES = {"loo_eval", "ttt", "induction", "transduction"}  # stages whose collectives can fall out of step


class RankFailed(RuntimeError):
    """Another rank failed this stage; this rank stops the task with it."""


class GroupBroken(RuntimeError):
    """A stage with collectives failed: the training process group may be out of step."""


def _single_rank_env() -> None:
    """Without a launcher: a one-rank group on this host (torch.distributed reads these variables)."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def init_ranks(timeout_s: float, train_timeout_s: float | None = None) -> tuple[int, int, int, Any]:
    """(rank, world, local_rank, control group): the default group (gloo on CPU, nccl on GPU) and a gloo
    group for the small per-stage agreements, separate so they never pair with a training collective.
    `train_timeout_s`: the default group's timeout when shorter than `timeout_s` (training collectives
    take seconds: a rank that died or ran out of memory inside one is noticed in minutes, not ten);
    whoever waits longer on a slower rank then uses a group of its own (`ttt.ds.DeepSpeedRunner`)."""
    import deepspeed
    import torch
    import torch.distributed as dist

    _single_rank_env()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        default_s = timeout_s if train_timeout_s is None else min(timeout_s, train_timeout_s)
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=default_s), verbose=False)
    # The control group waits longer: it is where a rank learns that another one timed out.
    ctl = dist.new_group(backend="gloo", timeout=timedelta(seconds=2 * timeout_s + 60))
    return dist.get_rank(), dist.get_world_size(), local_rank, ctl


class StageSync:
    """Wraps pipeline stages so every rank runs, skips and fails the same stages of a task."""

    def __init__(self, ctl: Any, rank: int, world: int):
        self.ctl, self.rank, self.world = ctl, rank, world
        self.deadline: float | None = None
        self.task_id = ""
        self.broken = False

    def exchange(self, value: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value, group=self.ctl)
        return out

    def wrap(self, name: str, fn: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        def run(s: Any) -> dict[str, Any]:
            s.deadline = self.deadline  # solve_task got no deadline: its own check would be per rank
            late = self.deadline is not None and time.monotonic() >= self.deadline
            if any(self.exchange(late)):
                raise DeadlineReached(f"task deadline passed before stage '{name}' (on some rank)")
            err, exc = None, None
            try:
                if name == "ttt":
                    _test_fault(self.rank, self.task_id)
                info = fn(s)
            except Exception as e:  # shared with the other ranks below, then re-raised into solve_task
                err, exc = error_record(name, e), e
            errors = [(r, e) for r, e in enumerate(self.exchange(err)) if e is not None]
            if errors and name in COLLECTIVE_STAGES and self.world > 1:
                self.broken = True
            if exc is not None and len(errors) == 1:
                raise exc  # only this rank failed: its own exception, traceback and all
            if errors:  # every rank's error, so rank 0's record names the rank that started it
                lines = [f"rank {r}: {e['type']}: {e['message'][:500]}" for r, e in errors]
                first = next(e for r, e in errors if r != self.rank) if exc is not None else errors[0][1]
                raise RankFailed(f"stage '{name}' failed on rank(s) {[r for r, _ in errors]}:\n" + "\n".join(lines) + "\n" + first["traceback"])
            return info

        return run


def _test_fault(rank: int, task_id: str) -> None:
    spec = os.environ.get(FAIL_ENV, "")
    if spec == f"{rank}:{task_id}":
        raise RuntimeError(f"test-only fault injected on rank {rank}")
    if spec == f"{rank}:{task_id}:die":
        os._exit(17)


def run_deepspeed(cfg: RunConfig, tasks: Sequence[Task], opts: RunOptions, console: Console) -> RunDir | None:
    """This process's part of a deepspeed run; returns the RunDir on rank 0, None elsewhere."""
    import torch
    import torch.distributed as dist

    from solve.pipeline.budget import BudgetPlanner
    from solve.pipeline.peak_memory import peak_memory, reset_peak_memory
    from solve.placement.ds_launch import launch_ranks, launched_as_rank, rank_count
    from solve.sandbox.pool import Sandbox
    from ttt.ds import DeepSpeedRunner, partition_at_load
    from ttt.models import pick_dtype, prepare_model_files

    if not launched_as_rank() and (n := rank_count(cfg)) > 1:  # not a rank yet: start the ranks
        return launch_ranks(cfg, tasks, opts, console, n)
    rank, world, local_rank, ctl = init_ranks(cfg.placement.collective_timeout_s, cfg.placement.train_collective_timeout_s)
    cuda = torch.cuda.is_available()
    if not cuda:  # ranks share the host's cores
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // local_world))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    # Deadlines are agreed by StageSync, not checked per rank inside solve_task.
    local_cfg = cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"device": device}),
        "run": cfg.run.model_copy(update={"task_timeout_s": None}),
    })
    run, planner, order = None, None, [None]
    if rank == 0:
        run = RunDir.open(opts.out, tasks, cfg.model_dump(mode="json"))
        pending = run.pending()
        if opts.global_deadline_s is not None:
            planner = BudgetPlanner.for_run(cfg, time.monotonic() + opts.global_deadline_s, 1)
            pending = planner.order(pending)
        order = [[t.id for t in pending]]
    dist.broadcast_object_list(order, src=0, group=ctl)
    by_id = {t.id: t for t in tasks}
    todo = [by_id[i] for i in order[0]]
    sync = StageSync(ctl, rank, world)
    stages = [(n, sync.wrap(n, f)) for n, f in stages_for(cfg.solve.mode, cfg.solve.rounds, cfg.solve.dsl_search_depth)]
    if todo:
        # ZeRO-3: held for the whole run so that transformers loads the model partitioned.
        prepare_model_files(cfg.model)  # any GGUF conversion first: it must not run partitioned
        bf16 = pick_dtype(cfg.model.dtype, torch.device(device)) == torch.bfloat16
        zero3_load = partition_at_load(cfg.placement.zero_stage, cfg.train.grad_accum, bf16)  # noqa: F841
        engine = Engine.load(local_cfg)
        engine.runner = DeepSpeedRunner(engine.model, cfg.train, cfg.placement.zero_stage, cfg.placement.collective_timeout_s)
        sandbox = Sandbox(cfg.sandbox) if rank == 0 else None
        if sandbox is not None:
            run.note_isolation(sandbox.isolation)
        try:
            for i, task in enumerate(todo):
                plan, budget = [None], None
                if rank == 0:
                    budget, *share = _plan(task, cfg, planner, run, opts)
                    plan = [tuple(share)]
                dist.broadcast_object_list(plan, src=0, group=ctl)
                seconds_left, steps, skipped = plan[0]
                if skipped:
                    if rank == 0:
                        run.record(skipped)
                    continue
                sync.deadline = None if seconds_left is None else time.monotonic() + seconds_left
                sync.task_id = task.id
                reset_peak_memory()
                start = time.monotonic()
                try:
                    rec = solve_task(task, local_cfg, engine, sandbox, train_steps=steps, stages=stages,
                                     artifacts_dir=run.path if rank == 0 else None)
                except Exception as e:  # a bug outside any stage (the stages record their own)
                    rec = failed_record(task, "pipeline", e, time.monotonic() - start)
                memory = sync.exchange(peak_memory())
                if rank == 0:
                    rec["ranks"] = [{"rank": r, **m} for r, m in enumerate(memory)]
                    rec["zero_stage"] = cfg.placement.zero_stage
                    run.record(end_task(task, rec, budget, planner, run, opts))
                    console.print(f"[{i + 1}/{len(todo)}] {task.id}: {rec['status']} ({rec['seconds']:.1f} s)", highlight=False)
                if sync.broken:
                    if rank == 0:
                        console.print(f"[red]stopping:[/] a rank failed inside a stage with collectives on {task.id}; "
                                      "the run directory is valid, rerun the same command to resume")
                    break
        finally:
            if sandbox is not None:
                sandbox.close()
    if rank == 0:
        finish_run(run, console)
    if sync.broken:
        # Everything finished is durable (fsynced records, atomic submission). A group with a timed-out
        # collective still pending can abort the interpreter's teardown ('terminate called without an
        # active exception', exit 250); leave without tearing it down so the ranks end cleanly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    dist.barrier(group=ctl)
    return run


def _plan(task: Task, cfg: RunConfig, planner: Any, run: RunDir, opts: RunOptions) -> tuple[Any, float | None, int | None, dict | None]:
    """Rank 0: (its budget, then what every rank gets: seconds left for the task, train steps, skipped record)."""
    now = time.monotonic()
    budget, skipped = begin_task(task, planner, run, opts, now)
    if skipped is not None:
        return None, None, None, skipped
    end = task_deadline(now, None if budget is None else budget.deadline, cfg.run.task_timeout_s)
    left = None if end is None else end - now
    return budget, left, None if budget is None else budget.steps, None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The options of `arc-ttt run` that a rank needs (its launcher passes them; see ds_launch)."""
    p = argparse.ArgumentParser(prog="python -m solve.placement.ds_rank", description="One rank of a deepspeed launch of `arc-ttt run`.")
    p.add_argument("--out", required=True, help="run directory (created, or resumed)")
    p.add_argument("--config", help="YAML config (values only)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="built-in dataset, e.g. arc-agi-1/evaluation")
    source.add_argument("--tasks", help="challenges JSON, a task JSON, or a directory of task JSONs")
    p.add_argument("--solutions", help="solutions JSON for --tasks (Kaggle format)")
    p.add_argument("--task-ids", help="comma-separated task ids")
    p.add_argument("--limit", type=int, help="at most this many tasks")
    p.add_argument("--demo-tasks", type=int, default=0, help="the first N tasks (by id) whose grids are all <= 6x6")
    p.add_argument("--shard", help="i/n: the i-th of n interleaved slices of the task list")
    p.add_argument("--deadline", type=float, help="global deadline in seconds from now (budget planner)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override (repeatable)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    return p.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> None:
    """What the deepspeed launcher starts per rank: `python -m solve.placement.ds_rank ARGS`, ARGS as for `arc-ttt run`."""
    from augment.tasks import TaskError, choose_tasks, load_tasks
    from solve.pipeline.runconfig import ConfigError, load_config

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_config(args.config, args.overrides)
        loaded = load_tasks(args.dataset, args.tasks, args.solutions)
        shard = None
        if args.shard:
            i, _, n = args.shard.partition("/")
            shard = (int(i), int(n))
        tasks = choose_tasks(loaded.with_unloadable(), args.task_ids, args.limit, args.demo_tasks, shard)
    except (ConfigError, TaskError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if not tasks:
        print("error: no tasks selected", file=sys.stderr)
        raise SystemExit(2)
    run_deepspeed(cfg, tasks, RunOptions(out=Path(args.out), global_deadline_s=args.deadline, progress=args.progress), Console())


if __name__ == "__main__":
    main()
