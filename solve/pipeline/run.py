"""The run loop's bookkeeping, shared by every placement: per-task start and finish, the summary.

The submission is valid before the first task starts and after every task; Ctrl-C or a crash leaves
a directory that the same command resumes. A global deadline (Kaggle) switches on the budget planner:
largest tasks first, each with a share of the remaining time and a hard per-task deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from solve.pipeline.budget import observe_record
from solve.pipeline.report import report_markdown, summarize, verified_cell
from solve.pipeline.rundir import RunDir
from solve.pipeline.stages import failed_record


@dataclass
class RunOptions:
    out: Path
    global_deadline_s: float | None = None  # seconds from now by which the run must end (budget planner)
    lanes: int = 1
    progress: bool = True
    timeline: bool = True  # append start/finish events to DIR/timeline.jsonl


def progress_bar(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"), console=console, disable=not enabled, transient=False,
    )


def one_task(task, cfg, engine, sandbox, planner, solve, run: RunDir, opts: RunOptions, on_stage=None) -> dict[str, Any]:
    start = time.monotonic()
    budget, skipped = begin_task(task, planner, run, opts, start)
    if skipped is not None:
        return skipped
    deadline, steps = (None, None) if budget is None else (budget.deadline, budget.steps)
    try:
        rec = solve(task, cfg, engine, sandbox, deadline=deadline, train_steps=steps, on_stage=on_stage, artifacts_dir=run.path)
    except Exception as e:  # solve_task records its own failures; this is a bug outside any stage
        rec = failed_record(task, "pipeline", e, time.monotonic() - start)
    return end_task(task, rec, budget, planner, run, opts)


def begin_task(task, planner, run: RunDir, opts: RunOptions, now: float, worker: int = 0, steps_cap: int | None = None):
    """(budget, None) for a task about to start (budget None without a planner), or (None, record) when
    the global deadline leaves no time to start it. `steps_cap` (a retry) lowers the planned steps."""
    budget = None
    if planner is not None:
        budget = planner.allot(task, now)
        if budget is None:
            rec = failed_record(task, "budget", TimeoutError("global deadline too close: task not started"), status="deadline")
            _timeline(run, opts, task.id, "skipped", now, rec, worker)
            return None, rec
    if steps_cap is not None:
        from solve.pipeline.budget import TaskBudget

        deadline = budget.deadline if budget is not None else math.inf
        steps = steps_cap if budget is None else min(budget.steps, steps_cap)
        budget = TaskBudget(budget.seconds if budget else math.inf, deadline, steps, f"retry: steps capped at {steps_cap}")
    plan = None if budget is None else budget.reason
    steps = None if budget is None else budget.steps
    _timeline(run, opts, task.id, "start", now, {"plan": plan, "steps": steps}, worker)
    return budget, None


def end_task(task, rec: dict[str, Any], budget, planner, run: RunDir, opts: RunOptions, worker: int = 0) -> dict[str, Any]:
    """Tell the planner what the task cost, note its plan in the record, log the finish."""
    if planner is not None:
        observe_record(planner, task, rec)  # a deadline-cut task teaches step time, never overhead
    if budget is not None:  # a planner's share, or a retry's cap
        seconds = round(budget.seconds, 2) if math.isfinite(budget.seconds) else None
        rec["plan"] = {"seconds": seconds, "steps": budget.steps, "reason": budget.reason}
    _timeline(run, opts, task.id, "finish", time.monotonic(), {"status": rec["status"], "seconds": rec.get("seconds")}, worker)
    return rec


def _timeline(run: RunDir, opts: RunOptions, task_id: str, event: str, at: float, info: dict[str, Any], worker: int = 0) -> None:
    if not opts.timeline:
        return
    import json

    with open(run.path / "timeline.jsonl", "a") as f:
        f.write(json.dumps({"task_id": task_id, "event": event, "wall": time.time(), "worker": worker, **info}) + "\n")


def finish_run(run: RunDir, console: Console) -> None:
    records = [run.done[t.id] for t in run.tasks if t.id in run.done]
    (run.path / "report.md").write_text(report_markdown(records, f"arc-ttt run: {run.path.name}", isolation=run.isolation))
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
        loss = f"{t['loss_first']:.2f}→{t['loss_last']:.2f}" if t.get("loss_first") is not None else ""
        err = f"{r['error']['stage']}: {r['error']['type']}" if r.get("error") else ""
        score = "" if r.get("score") is None else f"{r['score']:.2f}"
        table.add_row(
            r["task_id"], r["status"], score, f"{r.get('seconds', 0):.1f}", loss,
            verified_cell(r), str(st.get("transduction", {}).get("candidates", "")), err,
        )
    console.print(table)
    s = summarize(records)
    if s["score"] is not None:
        console.print(f"[bold]score: {s['score']:.4f}[/] (mean over tasks; {s['solved']}/{s['scored_tasks']} tasks solved; "
                      f"{s['test_outputs_solved']}/{s['test_outputs']} test outputs solved)")
    stage_txt = ", ".join(f"{k} {v['mean']:.1f}s" for k, v in s["stages"].items())
    console.print(f"mean time per stage: {stage_txt}")
