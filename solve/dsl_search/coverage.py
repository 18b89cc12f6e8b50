"""How many tasks of a dataset the DSL search solves: per task the program found, its outcome and time.

A task is *solved* when one of the search's first two distinct solutions (a submission's two attempts)
gets every test output right, and *fits* when some program reproduces every train pair. Tasks run in
`workers` forked processes, each with the same per-task budget, so the counts do not depend on the
worker count beyond what the budget cuts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from solve.dsl_search.search import search_task


@dataclass
class TaskCoverage:
    task_id: str
    fits: bool
    solved: bool | None  # None when the test outputs are unknown
    program: str | None  # the first solution's body (the lines after the header)
    depth: int | None
    seconds: float
    evaluated: int
    stopped_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def program_body(source: str) -> str:
    """The lines of a search program after `g = to_array(grid)`, joined with '; ' (for one-line tables)."""
    lines = source.strip().splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if "to_array(grid)" in line), 0)
    return "; ".join(line.strip() for line in lines[start:] if not line.strip().startswith("return "))


def cover_one(task: Any, depth: int, seconds: float) -> TaskCoverage:
    t0 = time.monotonic()
    result = search_task(task, depth, seconds, max_solutions=2, near_misses=0)
    solved = None
    if task.test_outputs is not None:
        solved = any(
            all(o.shape == y.shape and np.array_equal(o, y) for o, y in zip(f.test_outputs, task.test_outputs))
            for f in result.solutions[:2]
        )
    first = result.solutions[0] if result.solutions else None
    return TaskCoverage(
        task.id, first is not None, solved, program_body(first.source) if first else None, first.depth if first else None,
        round(time.monotonic() - t0, 3), result.stats["evaluated"], result.stats["stopped_by"],
    )


def _cover_star(args: tuple[Any, int, float]) -> TaskCoverage:
    return cover_one(*args)


def coverage(
    tasks: Sequence[Any], depth: int, seconds: float, workers: int = 1, on_done: Callable[[TaskCoverage], None] | None = None
) -> list[TaskCoverage]:
    """`cover_one` for every task, in task order; `on_done` is called as each finishes (progress)."""
    jobs = [(t, depth, seconds) for t in tasks]
    done: Iterable[TaskCoverage]
    if workers <= 1:
        done = (cover_one(*j) for j in jobs)
        out = []
        for c in done:
            out.append(c)
            if on_done:
                on_done(c)
        return out
    import multiprocessing as mp

    by_id: dict[str, TaskCoverage] = {}
    with mp.get_context("fork").Pool(workers) as pool:
        for c in pool.imap_unordered(_cover_star, jobs):
            by_id[c.task_id] = c
            if on_done:
                on_done(c)
    return [by_id[t.id] for t in tasks]


def summary(rows: Sequence[TaskCoverage]) -> dict[str, Any]:
    known = [r for r in rows if r.solved is not None]
    secs = [r.seconds for r in rows]
    return {
        "tasks": len(rows), "fits": sum(r.fits for r in rows), "solved": sum(bool(r.solved) for r in known),
        "with_solutions": len(known), "seconds_mean": round(float(np.mean(secs)), 3) if secs else None,
        "seconds_max": round(max(secs), 3) if secs else None,
        "by_depth": {d: sum(1 for r in rows if r.solved and r.depth == d) for d in sorted({r.depth for r in rows if r.depth})},
    }
