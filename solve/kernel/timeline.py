"""A run's timeline: task spans from DIR/timeline.jsonl (+ plans and stage times from results.jsonl),
a text summary with planned vs actual finish, and a PNG (one row per worker, one bar per task).

Events written by solve/pipeline/run.py: `start` (plan, steps), `finish` (status, seconds), `skipped` (the
planner had no time left). A start without a finish is a task that was running when the process
died (watchdog, crash): it is drawn up to the last event seen, with status `killed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from solve.pipeline.rundir import read_results

STATUS_COLORS = {"ok": "#3a923a", "deadline": "#d9b23a", "failed": "#c03d3e", "skipped": "#9e9e9e", "killed": "#e1812c"}


@dataclass
class Span:
    task_id: str
    worker: int
    start: float  # epoch seconds
    end: float
    status: str
    planned_s: float | None = None  # the planner's share for this task
    stages: dict[str, float] | None = None  # stage name -> seconds, in run order

    @property
    def planned_end(self) -> float | None:
        return None if self.planned_s is None else self.start + self.planned_s


def read_events(path: Path) -> list[dict[str, Any]]:
    return read_results(path)  # same JSON-lines format and the same torn-last-line rule


def load_spans(run_dir: str | Path) -> list[Span]:
    run_dir = Path(run_dir)
    events = read_events(run_dir / "timeline.jsonl")
    records = {r["task_id"]: r for r in read_results(run_dir / "results.jsonl")}
    last_seen = max((e["wall"] for e in events), default=0.0)
    open_: dict[tuple[str, int], dict[str, Any]] = {}
    spans: list[Span] = []
    for e in events:
        key = (e["task_id"], int(e.get("worker", 0)))
        if e["event"] == "start":
            open_[key] = e
        elif e["event"] == "finish" and key in open_:
            s = open_.pop(key)
            spans.append(_span(s, e["wall"], e.get("status", "ok"), records.get(e["task_id"])))
        elif e["event"] == "skipped":
            spans.append(Span(e["task_id"], key[1], e["wall"], e["wall"], "skipped"))
    spans += [_span(s, last_seen, "killed", None) for s in open_.values()]
    return sorted(spans, key=lambda s: (s.start, s.worker))


def _span(start_event: dict[str, Any], end: float, status: str, rec: dict[str, Any] | None) -> Span:
    plan = (rec or {}).get("plan") or {}
    stages = {k: float(v.get("seconds", 0.0)) for k, v in (rec or {}).get("stages", {}).items()}
    return Span(start_event["task_id"], int(start_event.get("worker", 0)), start_event["wall"], end, status,
                plan.get("seconds"), stages or None)


def read_kernel(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "kernel.json"
    return json.loads(path.read_text()) if path.is_file() else None


def finish_summary(spans: Sequence[Span], kernel: dict[str, Any] | None) -> dict[str, Any]:
    """Planned vs actual: the latest end the planner allowed any task, the actual last finish, the deadline."""
    ran = [s for s in spans if s.status != "skipped"]
    planned = [s.planned_end for s in ran if s.planned_end is not None]
    out: dict[str, Any] = {
        "tasks": len(spans), "ran": len(ran), "skipped": len(spans) - len(ran),
        "first_start": min((s.start for s in ran), default=None),
        "actual_end": max((s.end for s in ran), default=None),
        "planned_end": max(planned) if planned else None,
    }
    if kernel:
        out["started_at"] = kernel["started_at"]
        out["deadline_at"] = kernel["deadline_at"]
    return out


def timeline_text(spans: Sequence[Span], kernel: dict[str, Any] | None) -> str:
    """A table relative to kernel start (or first task start): start, planned, actual, status."""
    summary = finish_summary(spans, kernel)
    t0 = summary.get("started_at") or summary["first_start"] or 0.0
    lines = [f"{'task':10} {'worker':>6} {'start':>8} {'planned':>8} {'actual':>8}  status   stages (s)"]
    for s in spans:
        planned = "" if s.planned_s is None else f"{s.planned_s:8.1f}"
        stages = " ".join(f"{k}={v:.1f}" for k, v in (s.stages or {}).items() if v >= 0.05)
        lines.append(f"{s.task_id:10} {s.worker:>6} {s.start - t0:8.1f} {planned:>8} {s.end - s.start:8.1f}  {s.status:8} {stages}")
    rel = lambda x: "-" if x is None else f"{x - t0:.1f}s"  # noqa: E731
    lines.append(
        f"planned end {rel(summary['planned_end'])}, actual end {rel(summary['actual_end'])}"
        + (f", deadline {rel(summary['deadline_at'])}" if "deadline_at" in summary else "")
        + f" (from {'kernel start' if 'started_at' in summary else 'first task'}); "
        + f"{summary['ran']} ran, {summary['skipped']} skipped"
    )
    return "\n".join(lines)


def plot_timeline(spans: Sequence[Span], out: str | Path, kernel: dict[str, Any] | None = None, title: str = "arc-ttt run") -> Path:
    """One row per worker, one bar per task (colored by status), stage boundaries as thin ticks,
    the planner's share as an outline, the deadline as a red line."""
    import matplotlib

    matplotlib.use("Agg")  # headless: Kaggle and CI have no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    summary = finish_summary(spans, kernel)
    t0 = summary.get("started_at") or summary["first_start"] or 0.0
    workers = sorted({s.worker for s in spans}) or [0]
    row = {w: i for i, w in enumerate(workers)}
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.7 * len(workers)))
    for s in spans:
        y, x, w = row[s.worker], s.start - t0, max(s.end - s.start, 0.0)
        if s.planned_s is not None:  # outline: the time the planner granted
            ax.barh(y, s.planned_s, left=x, height=0.7, fill=False, edgecolor="#555555", linestyle=":", linewidth=0.8)
        if s.status == "skipped":
            ax.plot([x], [y], marker="x", color=STATUS_COLORS["skipped"], markersize=8)
            continue
        ax.barh(y, w, left=x, height=0.5, color=STATUS_COLORS.get(s.status, "#777777"), edgecolor="white", linewidth=0.5)
        edge = x
        for seconds in list((s.stages or {}).values())[:-1]:  # boundaries between stages
            edge += seconds
            ax.plot([edge, edge], [y - 0.25, y + 0.25], color="white", linewidth=0.6)
        if w > 0.06 * max(1.0, (summary["actual_end"] or t0) - t0):
            ax.text(x + w / 2, y, s.task_id, ha="center", va="center", fontsize=7, color="white")
    if "deadline_at" in summary:
        ax.axvline(summary["deadline_at"] - t0, color="red", linewidth=1.2)
        ax.text(summary["deadline_at"] - t0, len(workers) - 0.4, "deadline ", color="red", fontsize=8, va="bottom", ha="right")
    if "started_at" in summary:
        ax.set_xlim(left=0)  # show the time before the first task (install, model load)
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_ylim(-0.6, len(workers) - 0.1)
    ax.set_xlabel("seconds since kernel start" if "started_at" in summary else "seconds since first task")
    ax.set_title(title)
    handles = [Patch(color=c, label=k) for k, c in STATUS_COLORS.items()]
    handles.append(Patch(fill=False, edgecolor="#555555", linestyle=":", label="planned share"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
