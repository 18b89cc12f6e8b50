"""`arc-ttt run`: tasks in, a run directory out. One process, one model, one sandbox pool.

The submission is valid before the first task starts and after every task; Ctrl-C or a crash leaves
a directory that the same command resumes. A global deadline (Kaggle) switches on the budget planner:
largest tasks first, each with a share of the remaining time and a hard per-task deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from augment.tasks import Task
from solve.budget import BudgetPlanner
from solve.pipeline import Engine, failed_record, solve_task
from solve.report import report_markdown, summarize
from solve.rundir import RunDir
from solve.runconfig import RunConfig


@dataclass
class RunOptions:
    out: Path
    global_deadline_s: float | None = None  # seconds from now by which the run must end (budget planner)
    lanes: int = 1
    progress: bool = True
    timeline: bool = True  # append start/finish events to DIR/timeline.jsonl


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"), console=console, disable=not enabled, transient=False,
    )


def run_tasks(
    cfg: RunConfig,
    tasks: Sequence[Task],
    opts: RunOptions,
    console: Console | None = None,
    engine: Engine | None = None,
    solve: Callable[..., dict[str, Any]] = solve_task,
) -> RunDir:
    """Solve every pending task of `tasks` into `opts.out` (resuming what is there)."""
    from solve.sandbox import Sandbox

    console = console or Console()
    run = RunDir.open(opts.out, tasks, cfg.model_dump(mode="json"))
    pending = run.pending()
    if run.done:
        console.print(f"resuming {opts.out}: {len(run.done)} task(s) done, {len(pending)} to go")
    planner = None
    if opts.global_deadline_s is not None:
        planner = BudgetPlanner(time.monotonic() + opts.global_deadline_s, opts.lanes, cfg.train.steps, task_cap_s=cfg.run.task_timeout_s or 1e9)
        pending = planner.order(pending)
    if not pending:
        _finish(run, console)
        return run
    engine = engine or Engine.load(cfg)
    with Sandbox(cfg.sandbox) as sandbox, _progress(console, opts.progress) as bar:
        job = bar.add_task("tasks", total=len(pending), status="")
        for task in pending:
            bar.update(job, status=f"{task.id}")
            show = lambda stage, tid=task.id: bar.update(job, status=f"{tid}: {stage}")  # noqa: E731
            rec = _one(task, cfg, engine, sandbox, planner, solve, run, opts, show)
            run.record(rec)
            bar.update(job, advance=1, status=f"{task.id}: {rec['status']}")
    _finish(run, console)
    return run


def _one(task, cfg, engine, sandbox, planner, solve, run: RunDir, opts: RunOptions, on_stage=None) -> dict[str, Any]:
    start = time.monotonic()
    deadline, steps, plan = None, None, None
    if planner is not None:
        budget = planner.allot(task, start)
        if budget is None:
            rec = failed_record(task, "budget", TimeoutError("global deadline too close: task not started"))
            _timeline(run, opts, task.id, "skipped", start, rec)
            return rec
        deadline, steps, plan = budget.deadline, budget.steps, budget.reason
    _timeline(run, opts, task.id, "start", start, {"plan": plan, "steps": steps})
    try:
        rec = solve(task, cfg, engine, sandbox, deadline=deadline, train_steps=steps, on_stage=on_stage)
    except Exception as e:  # solve_task records its own failures; this is a bug outside any stage
        rec = failed_record(task, "pipeline", e, time.monotonic() - start)
    if planner is not None:
        t = rec.get("stages", {}).get("ttt", {})
        planner.observe(task, rec.get("seconds", 0.0), t.get("train_seconds", t.get("seconds", 0.0)), t.get("steps", 0))
        rec["plan"] = {"seconds": round(budget.seconds, 2), "steps": steps, "reason": plan}
    _timeline(run, opts, task.id, "finish", time.monotonic(), {"status": rec["status"], "seconds": rec.get("seconds")})
    return rec


def _timeline(run: RunDir, opts: RunOptions, task_id: str, event: str, at: float, info: dict[str, Any]) -> None:
    if not opts.timeline:
        return
    import json

    with open(run.path / "timeline.jsonl", "a") as f:
        f.write(json.dumps({"task_id": task_id, "event": event, "wall": time.time(), "worker": 0, **info}) + "\n")


def _finish(run: RunDir, console: Console) -> None:
    records = [run.done[t.id] for t in run.tasks if t.id in run.done]
    (run.path / "report.md").write_text(report_markdown(records, f"arc-ttt run: {run.path.name}"))
    print_summary(records, console)
    console.print(f"submission: {run.submission_path}")


def print_summary(records: Sequence[dict[str, Any]], console: Console) -> None:
    from rich.table import Table

    table = Table(title="tasks")
    for col in ("task", "status", "score", "seconds", "ttt loss", "verified", "grid cands", "error"):
        table.add_column(col)
    for r in records:
        st = r.get("stages", {})
        t = st.get("ttt", {})
        loss = f"{t['loss_first']:.3f}->{t['loss_last']:.3f}" if t.get("loss_first") is not None else ""
        err = f"{r['error']['stage']}: {r['error']['type']}" if r.get("error") else ""
        score = "" if r.get("score") is None else f"{r['score']:.2f}"
        table.add_row(
            r["task_id"], r["status"], score, f"{r.get('seconds', 0):.1f}", loss,
            str(st.get("verify", {}).get("verified", "")), str(st.get("transduction", {}).get("candidates", "")), err,
        )
    console.print(table)
    s = summarize(records)
    if s["score"] is not None:
        console.print(f"[bold]score: {s['score']:.4f}[/] ({s['solved']}/{s['scored_tasks']} tasks solved)")
    stage_txt = ", ".join(f"{k} {v['mean']:.1f}s" for k, v in s["stages"].items())
    console.print(f"mean time per stage: {stage_txt}")
