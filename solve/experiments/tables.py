"""Tables over an experiment's points: one row of metrics per point (from solve.pipeline.report.summarize),
written as CSV (every number), Markdown (what a researcher pastes) and a PNG (solve/experiments/plots.py).

Metrics per point: pass@2 (official per-task scoring, mean over tasks) and tasks solved; held-out NLL
per token of the true test outputs before and after TTT; programs verified per task and the fraction
of tasks with at least one verified program; seconds per task (mean, p90) overall and per stage.
Leave-one-out NLL on train pairs is recorded only with `run.eval_loo_nll` (one extra adaptation per
train pair).

With several seeds (`--seeds`), each point's row holds the mean over seeds of every metric, with
`<metric>_std` (sample standard deviation over seeds), `<metric>_min` and `<metric>_max`; rows with
`row == "diff"` hold paired differences against the first point (the baseline): per seed, the mean
over tasks of (point - baseline) on the same task, then the mean and spread of that over seeds.
DIR/<kind>_seeds.csv has one row per point and seed, and one per point, seed and paired difference.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any, Sequence

from solve.experiments.plan import Manifest, point_records
from solve.pipeline.report import summarize

STAGES = ("augment", "loo_eval", "ttt", "induction", "verify", "transduction", "vote")
METRICS = (
    "tasks", "failed", "scored_tasks", "pass2", "solved", "nll_before", "nll_after", "nll_tasks", "loo_nll",
    "verified_per_task", "frac_tasks_verified", "ttt_steps_mean", "sec_mean", "sec_p90",
)
# Metrics whose spread over seeds is reported (the counts of tasks are not: they are equal across seeds).
SPREAD_METRICS = (
    "pass2", "solved", "nll_before", "nll_after", "loo_nll", "verified_per_task", "frac_tasks_verified",
    "ttt_steps_mean", "sec_mean", "sec_p90",
)
# Paired differences: (table column, the per-task value it is the mean of).
PAIRED = (("pass2", "score"), ("nll_after", "nll_after"), ("sec_mean", "seconds"))


def charged(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as if every task had trained: a ttt stage that loaded its adapter from
    run.adapter_cache is charged the training seconds of the run that made it (its `train_seconds`),
    in the stage and in the task's seconds. Without this, a point that reuses adapters would look
    faster per task than the same config trained, and win the Pareto front by bookkeeping."""
    out = []
    for r in records:
        ttt = r.get("stages", {}).get("ttt", {})
        if ttt.get("cached") and ttt.get("train_seconds") is not None:
            extra = float(ttt["train_seconds"])
            stages = {**r["stages"], "ttt": {**ttt, "seconds": ttt.get("seconds", 0.0) + extra}}
            r = {**r, "stages": stages, "seconds": r.get("seconds", 0.0) + extra}
        out.append(r)
    return out


def point_row(name: str, values: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One point's metrics over its task records (pass `charged` records: seconds as if trained)."""
    s = summarize(records)
    row: dict[str, Any] = {"point": name, **values}
    row |= {
        "tasks": s["tasks"], "failed": s["failed"], "scored_tasks": s["scored_tasks"], "pass2": s["score"],
        "solved": s["solved"], "nll_before": s["heldout_nll_before"], "nll_after": s["heldout_nll_after"],
        "nll_tasks": s["heldout_nll_tasks"], "loo_nll": s["loo_nll_after"], "verified_per_task": s["programs_verified_per_task"],
        "frac_tasks_verified": s["frac_tasks_with_verified_program"], "ttt_steps_mean": s["ttt_steps_mean"],
        "sec_mean": s["seconds_per_task"]["mean"], "sec_p90": s["seconds_per_task"]["p90"],
        "cached_tasks": sum(bool(r.get("stages", {}).get("ttt", {}).get("cached")) for r in records),
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
    lines.append(_context_line(manifest))
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
                           if manifest.kind == "sweep" else "") + _cache_note(rows),
    ]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, manifest: Manifest) -> dict[str, Path]:
    """Read every point's results and write DIR/<kind>.csv, .md and .png; returns their paths (with
    several seeds also DIR/<kind>_seeds.csv, see `write_seed_tables`)."""
    paths = {ext: out / f"{manifest.kind}.{ext}" for ext in ("csv", "md", "png")}
    if manifest.multi_seed:
        return write_seed_tables(out, manifest, paths)
    rows, tasks_by_point = [], {}
    for p in manifest.points:
        records = charged(point_records(out / p.name, manifest.task_ids))
        rows.append(point_row(p.name, p.values, records))
        tasks_by_point[p.name] = per_task(records)
    fronts = mark_pareto(rows, manifest.kind)
    write_csv(rows, paths["csv"])
    title = table_title(manifest)
    paths["md"].write_text(markdown(manifest, rows, title))
    from solve.experiments import plots

    if manifest.kind == "ablation":
        plots.plot_ablation(rows, tasks_by_point, paths["png"], title)
    else:
        plots.plot_sweep(rows, fronts, paths["png"], title)
    return paths


def table_title(manifest: Manifest) -> str:
    return "Augmentation ablation" if manifest.kind == "ablation" else f"Sweep over {', '.join(manifest.params)}"


def mark_pareto(rows: list[dict[str, Any]], kind: str) -> dict[str, list[int]]:
    """A sweep's Pareto fronts (pass@2 and NLL after vs mean seconds), also marked in each row as
    `pareto_<metric>`; nothing for an ablation (its points are not a trade-off against time)."""
    fronts: dict[str, list[int]] = {}
    if kind == "sweep":
        for m in ("pass2", "nll_after"):
            fronts[m] = pareto_front([r["sec_mean"] for r in rows], [r[m] for r in rows], maximize=(m == "pass2"))
            for i, r in enumerate(rows):
                r[f"pareto_{m}"] = i in fronts[m]
    return fronts


# --- several seeds -----------------------------------------------------------------------------------


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for fewer than 2 values), min and max, ignoring Nones."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": min(vals), "max": max(vals)}


def seed_point_row(name: str, values: dict[str, Any], per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One point over its seeds' rows (`point_row` each): the mean of every metric, and for
    SPREAD_METRICS also `_std`, `_min`, `_max`. Task counts are the smallest over seeds (an
    unfinished seed shows), failures the total."""
    row: dict[str, Any] = {"row": "point", "point": name, **values, "seeds": len(per_seed)}
    row |= {k: min((r[k] for r in per_seed), default=0) for k in ("tasks", "scored_tasks", "nll_tasks")}
    row |= {k: sum(r[k] for r in per_seed) for k in ("failed", "cached_tasks")}  # totals over seeds
    for m in SPREAD_METRICS:
        s = spread([r.get(m) for r in per_seed])
        row |= {m: s["mean"], f"{m}_std": s["std"], f"{m}_min": s["min"], f"{m}_max": s["max"]}
    stage_cols = dict.fromkeys(k for r in per_seed for k in r if k.endswith(("_mean_s", "_p90_s")))
    row |= {k: spread([r.get(k) for r in per_seed])["mean"] for k in stage_cols}
    return row


def task_values(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per task id, the values paired differences are taken of: score, held-out NLL after TTT, seconds."""
    return {
        r["task_id"]: {"score": r.get("score"), "nll_after": r.get("stages", {}).get("ttt", {}).get("nll_after"),
                       "seconds": r.get("seconds")}
        for r in records
    }


def paired_diff(point: dict[str, dict[str, float | None]], base: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """For one seed: per PAIRED metric, the mean over tasks (present in both with a value) of point - base,
    and `tasks`, the number of tasks paired on score (or on NLL when no task has a score)."""
    out: dict[str, Any] = {}
    counts = []
    for col, key in PAIRED:
        diffs = [point[t][key] - base[t][key] for t in point
                 if t in base and point[t][key] is not None and base[t][key] is not None]
        out[col] = statistics.fmean(diffs) if diffs else None
        counts.append(len(diffs))
    out["tasks"] = counts[0] or counts[1]
    return out


def diff_row(name: str, baseline: str, per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A point's paired differences against the baseline over seeds: for each PAIRED metric the mean,
    std, min and max over seeds of the per-seed mean difference, and `<metric>_same_sign`: every seed's
    difference is nonzero and of the same sign (the direction is not an accident of one seed)."""
    row: dict[str, Any] = {"row": "diff", "point": name, "baseline": baseline, "seeds": len(per_seed),
                           "tasks": min((d["tasks"] for d in per_seed), default=0)}
    for col, _ in PAIRED:
        vals = [d[col] for d in per_seed if d[col] is not None]
        s = spread(vals)
        row |= {col: s["mean"], f"{col}_std": s["std"], f"{col}_min": s["min"], f"{col}_max": s["max"]}
        row[f"{col}_same_sign"] = bool(vals) and (all(v > 0 for v in vals) or all(v < 0 for v in vals))
    return row


def seed_tables(out: Path, manifest: Manifest) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(point rows, diff rows, per-seed rows, per-seed diff rows) of a several-seed experiment."""
    per_run: dict[tuple[str, int | None], dict[str, dict[str, float | None]]] = {}
    seed_rows: list[dict[str, Any]] = []
    for p, seed, rel in manifest.runs():
        records = charged(point_records(out / rel, manifest.task_ids))
        seed_rows.append({"row": "run", "point": p.name, "seed": seed} | point_row(p.name, p.values, records))
        per_run[(p.name, seed)] = task_values(records)
    rows = [seed_point_row(p.name, p.values, [r for r in seed_rows if r["point"] == p.name]) for p in manifest.points]
    base = manifest.points[0].name
    seed_diffs, diffs = [], []
    for p in manifest.points[1:]:
        mine = []
        for seed in manifest.seeds:
            d = paired_diff(per_run[(p.name, seed)], per_run[(base, seed)])
            mine.append(d)
            seed_diffs.append({"row": "diff", "point": p.name, "baseline": base, "seed": seed, **d})
        diffs.append(diff_row(p.name, base, mine))
    return rows, diffs, seed_rows, seed_diffs


def write_seed_tables(out: Path, manifest: Manifest, paths: dict[str, Path]) -> dict[str, Path]:
    """Write a several-seed experiment's tables: DIR/<kind>.csv (point rows, then diff rows),
    DIR/<kind>_seeds.csv (per point and seed), .md and .png."""
    rows, diffs, seed_rows, seed_diffs = seed_tables(out, manifest)
    fronts = mark_pareto(rows, manifest.kind)  # on the means over seeds
    paths = {**paths, "seeds_csv": out / f"{manifest.kind}_seeds.csv"}
    write_csv([*rows, *diffs], paths["csv"])
    write_csv([*seed_rows, *seed_diffs], paths["seeds_csv"])
    title = table_title(manifest)
    paths["md"].write_text(seed_markdown(manifest, rows, diffs, title))
    from solve.experiments import plots

    plots.plot_seeds(rows, diffs, seed_rows, seed_diffs, fronts, paths["png"], title, vs_time=manifest.kind == "sweep")
    return paths


def _pm(r: dict[str, Any], m: str, digits: int = 3) -> str:
    """'mean ± std [min, max]' of metric `m` in a row with spread columns."""
    if r.get(m) is None:
        return "n/a"
    std = "" if r.get(f"{m}_std") is None else f" ± {_num(r[f'{m}_std'], digits)}"
    return f"{_num(r[m], digits)}{std} [{_num(r[f'{m}_min'], digits)}, {_num(r[f'{m}_max'], digits)}]"


def _num(v: float, digits: int) -> str:
    """Fixed point, or 3 significant digits where fixed point would show a nonzero value as 0 (a
    small paired difference or spread must not read as none)."""
    return f"{v:.{digits}f}" if v == 0 or abs(v) >= 10**-digits else f"{v:.2e}"


def seed_markdown(manifest: Manifest, rows: Sequence[dict[str, Any]], diffs: Sequence[dict[str, Any]], title: str) -> str:
    """The several-seed report: per point mean ± std [min, max] over seeds, then paired differences
    against the first point, then seconds per stage (means over seeds)."""
    lead = [p for p in manifest.params if p != "augment.set"] if manifest.kind == "sweep" else []
    head = ["point", *lead] if manifest.kind == "sweep" else ["augment set"]
    cols = ["tasks", "pass@2", "solved", "NLL before", "NLL after", "LOO NLL", "verified / task", "s/task mean"]
    cols += ["Pareto (time vs)"] if manifest.kind == "sweep" else []
    seeds = ", ".join(str(s) for s in manifest.seeds)
    lines = [f"# {title}", "", _context_line(manifest) + f" Seeds {seeds}: every point ran once per seed; "
             "each cell is mean ± std [min, max] over seeds (std: sample standard deviation).", ""]
    lines += ["| " + " | ".join(head + cols) + " |", "|" + "---|" * (len(head) + len(cols))]
    for r in rows:
        fail = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [r["point"], *[str(r.get(p)) for p in lead], f"{r['tasks']}{fail}", _pm(r, "pass2"), _pm(r, "solved", 1),
                 _pm(r, "nll_before"), _pm(r, "nll_after"), _pm(r, "loo_nll"), _pm(r, "verified_per_task", 2), _pm(r, "sec_mean", 1)]
        if manifest.kind == "sweep":
            cells.append(", ".join(n for m, n in (("pass2", "pass@2"), ("nll_after", "NLL")) if r.get(f"pareto_{m}")))
        lines.append("| " + " | ".join(cells) + " |")
    if diffs:
        base = diffs[0]["baseline"]
        lines += ["", f"Paired differences against `{base}` (per seed: mean over tasks of point − {base} on the same task; "
                  "then mean ± std [min, max] over seeds). Same sign: every seed's difference points the same way.", "",
                  "| point | tasks | Δ pass@2 | Δ NLL after | Δ s/task | same sign (pass@2 / NLL / s) |", "|---|---|---|---|---|---|"]
        for d in diffs:
            signs = " / ".join("yes" if d[f"{c}_same_sign"] else "no" for c, _ in PAIRED)
            lines.append(f"| {d['point']} | {d['tasks']} | {_pm(d, 'pass2')} | {_pm(d, 'nll_after')} | {_pm(d, 'sec_mean', 1)} | {signs} |")
    stages = [s for s in STAGES if any(r.get(f"{s}_mean_s") is not None for r in rows)]
    lines += ["", "Seconds per task by stage, mean over seeds of mean (p90):", "", "| point | " + " | ".join(stages) + " |",
              "|" + "---|" * (len(stages) + 1)]
    for r in rows:
        lines.append(f"| {r['point']} | " + " | ".join(f"{_f(r.get(f'{s}_mean_s'), 2)} ({_f(r.get(f'{s}_p90_s'), 2)})" for s in stages) + " |")
    lines += ["", "A difference whose spread over seeds includes 0, or whose sign changes between seeds, is within seed "
              "noise. pass@2 and NLL are defined as in the one-seed table; NLL differences cover tasks with known outputs."
              + _cache_note(rows)]
    return "\n".join(lines) + "\n"


def _cache_note(rows: Sequence[dict[str, Any]]) -> str:
    """A sentence saying how seconds count tasks whose adapter was loaded (empty when none was)."""
    n = sum(r.get("cached_tasks") or 0 for r in rows)
    if not n:
        return ""
    return (f" {n} task run(s) loaded their adapter from DIR/adapters instead of training; their seconds include the "
            "training seconds of the run that trained it (column cached_tasks in the CSV).")


def _context_line(manifest: Manifest) -> str:
    """'N task(s); config ...; shard ...; merged from ....' (the line under every table's title)."""
    return (f"{len(manifest.task_ids)} task(s); config `{manifest.config or 'defaults'}`"
            + (f" with `{' '.join(manifest.base_overrides)}`" if manifest.base_overrides else "")
            + (f"; shard {manifest.shard}" if manifest.shard else "")
            + (f"; merged from {len(manifest.merged_from)} directories" if manifest.merged_from else "") + ".")
