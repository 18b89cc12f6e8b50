"""Throughput of the augmentation pipeline: leave-one-out samples built per second, per set.

    python -m augment.bench                      # every set on arc-agi-1/evaluation
    python -m augment.bench --sets geometric+color --n-samples 32 --limit 100

`run_benchmark` is importable and returns a plain dict; `set_name` may be one set, a comma-separated
list of sets, or "every" for all of them.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from augment.loo import build_samples
from augment.sets import SETS, get_set
from augment.tasks import load_dataset, select


def _set_names(set_name: str) -> list[str]:
    if set_name in ("every", "*"):
        return list(SETS)
    names = [s.strip() for s in set_name.split(",") if s.strip()]
    for name in names:
        get_set(name)  # unknown names raise with the list of choices
    return names


def _bench_set(tasks, set_name: str, n_samples: int, seed: int) -> dict:
    spec = get_set(set_name)
    per_task: list[int] = []
    generated = 0
    dropped: Counter[str] = Counter()
    short = 0  # tasks that got fewer distinct samples than asked for
    no_samples = 0
    start = time.perf_counter()
    for i, task in enumerate(tasks):
        samples, report = build_samples(task, spec, n_samples, np.random.default_rng(seed + i))
        per_task.append(len(samples))
        generated += report.generated
        dropped.update(report.dropped)
        short += report.kept < n_samples
        no_samples += report.kept == 0
    seconds = time.perf_counter() - start
    total = sum(per_task)
    return {
        "set": set_name,
        "tasks": len(tasks),
        "samples": total,
        "generated": generated,
        "dropped": dict(dropped),
        "seconds": seconds,
        "samples_per_s": total / seconds if seconds else float("inf"),
        "tasks_per_s": len(tasks) / seconds if seconds else float("inf"),
        "ms_per_task": 1000 * seconds / len(tasks) if tasks else 0.0,
        "samples_per_task_mean": total / len(tasks) if tasks else 0.0,
        "samples_per_task_min": min(per_task, default=0),
        "samples_per_task_max": max(per_task, default=0),
        "tasks_short": short,
        "tasks_without_samples": no_samples,
    }


def run_benchmark(
    dataset: str = "arc-agi-1/evaluation",
    set_name: str = "geometric+color",
    n_samples: int = 32,
    limit: int | None = None,
    seed: int = 0,
) -> dict:
    """Build samples for every task of `dataset` (first `limit`) under each set; timings and counts."""
    names = _set_names(set_name)
    start = time.perf_counter()
    loaded = load_dataset(dataset)
    load_s = time.perf_counter() - start
    tasks = select(loaded.tasks, limit=limit)
    sets = {name: _bench_set(tasks, name, n_samples, seed) for name in names}
    seconds = sum(s["seconds"] for s in sets.values())
    samples = sum(s["samples"] for s in sets.values())
    task_runs = len(tasks) * len(sets)
    return {
        "dataset": dataset,
        "tasks": len(tasks),
        "load_issues": len(loaded.issues),
        "load_s": load_s,
        "n_samples": n_samples,
        "seed": seed,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds if seconds else float("inf"),
        "tasks_per_s": task_runs / seconds if seconds else float("inf"),
        "sets": sets,
    }


def format_table(result: dict) -> str:
    head = (
        f"{result['dataset']}: {result['tasks']} tasks (loaded in {result['load_s']:.2f}s, "
        f"{result['load_issues']} issues), n_samples={result['n_samples']}, seed={result['seed']}"
    )
    cols = ("set", "samples", "generated", "dups", "seconds", "samples/s", "tasks/s", "ms/task", "mean/task", "short")
    rows = [cols]
    for s in result["sets"].values():
        rows.append(
            (
                s["set"],
                str(s["samples"]),
                str(s["generated"]),
                str(sum(s["dropped"].values())),
                f"{s['seconds']:.2f}",
                f"{s['samples_per_s']:,.0f}",
                f"{s['tasks_per_s']:,.0f}",
                f"{s['ms_per_task']:.2f}",
                f"{s['samples_per_task_mean']:.1f}",
                str(s["tasks_short"]),
            )
        )
    rows.append(
        ("total", str(result["samples"]), "", "", f"{result['seconds']:.2f}",
         f"{result['samples_per_s']:,.0f}", f"{result['tasks_per_s']:,.0f}", "", "", "")
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="arc-agi-1/evaluation")
    p.add_argument("--sets", default="every", help="a set, a comma-separated list, or 'every'")
    p.add_argument("--n-samples", type=int, default=32)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(format_table(run_benchmark(a.dataset, a.sets, a.n_samples, a.limit, a.seed)))


if __name__ == "__main__":
    main()
