"""Tables over an experiment's points: one row of metrics per point (from solve.pipeline.report.summarize),
written as CSV (every number), Markdown (what a researcher pastes) and a PNG (solve/experiments/plots.py).

Metrics per point: pass@2 (official per-task scoring, mean over tasks) and tasks solved; held-out NLL
per token of the true test outputs before and after TTT; programs verified per task and the fraction
of tasks with at least one verified program; seconds per task (mean, p90) overall and per stage.
Leave-one-out NLL on train pairs is not in the task records (it would cost one extra adaptation per
train pair), so it is not reported.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

from solve.experiments.plan import Manifest, point_records
from solve.pipeline.report import summarize

STAGES = ("augment", "loo_eval", "ttt", "induction", "verify", "transduction", "vote")
METRICS = (
    "tasks", "failed", "scored_tasks", "pass2", "solved", "nll_before", "nll_after", "nll_tasks", "loo_nll",
    "verified_per_task", "frac_tasks_verified", "ttt_steps_mean", "sec_mean", "sec_p90",
)


def point_row(name: str, values: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    s = summarize(records)
    row: dict[str, Any] = {"point": name, **values}
    row |= {
        "tasks": s["tasks"], "failed": s["failed"], "scored_tasks": s["scored_tasks"], "pass2": s["score"],
        "solved": s["solved"], "nll_before": s["heldout_nll_before"], "nll_after": s["heldout_nll_after"],
        "nll_tasks": s["heldout_nll_tasks"], "loo_nll": s["loo_nll_after"], "verified_per_task": s["programs_verified_per_task"],
        "frac_tasks_verified": s["frac_tasks_with_verified_program"], "ttt_steps_mean": s["ttt_steps_mean"],
        "sec_mean": s["seconds_per_task"]["mean"], "sec_p90": s["seconds_per_task"]["p90"],
    }
    for stage in _stage_names([s]):
        st = s["stages"].get(stage)
        row[f"{stage}_mean_s"] = st["mean"] if st else None
        row[f"{stage}_p90_s"] = st["p90"] if st else None
    return row


def _stage_names(summaries: Sequence[dict[str, Any]]) -> list[str]:
    extra = sorted({k for s in summaries for k in s["stages"]} - set(STAGES))
    return [*STAGES, *extra]


def per_task(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-task numbers the plots scatter: score and held-out NLL after TTT."""
    return [
        {"task_id": r["task_id"], "score": r.get("score"), "nll_after": r.get("stages", {}).get("ttt", {}).get("nll_after")}
        for r in records
    ]


def pareto_front(xs: Sequence[float], ys: Sequence[float | None], maximize: bool) -> list[int]:
    """Indices of points no other point beats: lower x and better y (higher, or lower if not maximize)."""
    idx = [i for i, y in enumerate(ys) if y is not None]
    sign = -1.0 if maximize else 1.0
    front, best = [], float("inf")
    for i in sorted(idx, key=lambda i: (xs[i], sign * ys[i])):
        if sign * ys[i] < best:
            front.append(i)
            best = sign * ys[i]
    return front


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_cell(r.get(k)) for k in cols})


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    return round(v, 6) if isinstance(v, float) else v


def _f(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def markdown(manifest: Manifest, rows: Sequence[dict[str, Any]], title: str) -> str:
    lead = manifest.params or []
    head = ["point", *[p for p in lead if p != "augment.set"]] if manifest.kind == "sweep" else ["augment set"]
    cols = ["tasks", "pass@2", "solved", "NLL before", "NLL after", "LOO NLL", "verified / task", "tasks w/ verified",
            "s/task mean", "s/task p90"] + (["Pareto (time vs)"] if manifest.kind == "sweep" else [])
    lines = [f"# {title}", ""]
    lines.append(f"{len(manifest.task_ids)} task(s); config `{manifest.config or 'defaults'}`"
                 + (f" with `{' '.join(manifest.base_overrides)}`" if manifest.base_overrides else "")
                 + (f"; shard {manifest.shard}" if manifest.shard else "")
                 + (f"; merged from {len(manifest.merged_from)} directories" if manifest.merged_from else "") + ".")
    lines += ["", "| " + " | ".join(head + cols) + " |", "|" + "---|" * (len(head) + len(cols))]
    for r in rows:
        lead_cells = [r["point"]] + [str(r.get(p)) for p in head[1:]] if manifest.kind == "sweep" else [r["point"]]
        frac = f"{r['frac_tasks_verified']:.0%}"
        fail = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [f"{r['tasks']}{fail}", _f(r["pass2"]), f"{r['solved']}/{r['scored_tasks']}", _f(r["nll_before"]),
                 _f(r["nll_after"]), _f(r["loo_nll"]), _f(r["verified_per_task"], 2), frac, _f(r["sec_mean"], 1), _f(r["sec_p90"], 1)]
        if manifest.kind == "sweep":
            cells.append(", ".join(n for m, n in (("pass2", "pass@2"), ("nll_after", "NLL")) if r.get(f"pareto_{m}")))
        lines.append("| " + " | ".join(lead_cells + cells) + " |")
    stages = [s for s in STAGES if any(r.get(f"{s}_mean_s") is not None for r in rows)]
    lines += ["", "Seconds per task by stage, mean (p90):", "", "| point | " + " | ".join(stages) + " |",
              "|" + "---|" * (len(stages) + 1)]
    for r in rows:
        cells = [f"{_f(r.get(f'{s}_mean_s'), 2)} ({_f(r.get(f'{s}_p90_s'), 2)})" for s in stages]
        lines.append(f"| {r['point']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "pass@2: official scoring (per task, the fraction of test inputs with an exact attempt; mean over tasks). "
        "NLL: mean over tasks of the per-token negative log-likelihood of the true test outputs, before and after "
        "TTT (only tasks with known outputs). LOO NLL: the same for each train pair held out in turn (adapt on the "
        "others), recorded only with `--set run.eval_loo_nll=true` (one extra adaptation per train pair)." + (" Pareto: no other point has lower mean seconds per task and a better metric."
                           if manifest.kind == "sweep" else ""),
    ]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, manifest: Manifest) -> dict[str, Path]:
    """Read every point's results and write DIR/<kind>.csv, .md and .png; returns their paths."""
    rows, tasks_by_point = [], {}
    for p in manifest.points:
        records = point_records(out / p.name, manifest.task_ids)
        rows.append(point_row(p.name, p.values, records))
        tasks_by_point[p.name] = per_task(records)
    fronts: dict[str, list[int]] = {}
    if manifest.kind == "sweep":
        for m in ("pass2", "nll_after"):
            fronts[m] = pareto_front([r["sec_mean"] for r in rows], [r[m] for r in rows], maximize=(m == "pass2"))
            for i, r in enumerate(rows):
                r[f"pareto_{m}"] = i in fronts[m]
    paths = {ext: out / f"{manifest.kind}.{ext}" for ext in ("csv", "md", "png")}
    write_csv(rows, paths["csv"])
    title = "Augmentation ablation" if manifest.kind == "ablation" else f"Sweep over {', '.join(manifest.params)}"
    paths["md"].write_text(markdown(manifest, rows, title))
    from solve.experiments import plots

    if manifest.kind == "ablation":
        plots.plot_ablation(rows, tasks_by_point, paths["png"], title)
    else:
        plots.plot_sweep(rows, fronts, paths["png"], title)
    return paths
