"""Throughput of the DSL program search: primitive calls per second, distinct behaviours per second,
the depth reached within the budget, and tasks solved, over a few tasks of a dataset."""

from __future__ import annotations

import time
from typing import Any

from solve.dsl_search.coverage import cover_one
from solve.dsl_search.search import search_task


def run_benchmark(dataset: str = "arc-agi-1/training", n_tasks: int = 8, depth: int = 2, seconds: float = 2.0) -> dict[str, Any]:
    """Search the first `n_tasks` tasks of `dataset` (by id) at `depth` with `seconds` each."""
    from augment.tasks import load_dataset

    tasks = sorted(load_dataset(dataset).tasks, key=lambda t: t.id)[:n_tasks]
    evaluated = classes = 0
    depths, solved = [], 0
    t0 = time.monotonic()
    for t in tasks:
        r = search_task(t, depth, seconds, max_solutions=10**6, near_misses=0)  # never stops early: a full budget's work
        evaluated += r.stats["evaluated"]
        classes += r.stats["classes"]
        depths.append(r.stats["depth_reached"])
    busy = time.monotonic() - t0
    for t in tasks:
        solved += bool(cover_one(t, depth, seconds).solved)
    return {
        "dataset": dataset, "tasks": len(tasks), "depth": depth, "seconds_per_task": seconds,
        "calls_per_s": evaluated / busy if busy else 0.0, "behaviours_per_s": classes / busy if busy else 0.0,
        "depth_reached_min": min(depths) if depths else 0, "solved": solved,
    }
