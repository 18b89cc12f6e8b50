"""Real training tasks with programs: the DSL search over clean training sets, as a pretraining corpus.

Every task of the given training datasets that shares no grid with an evaluation set
(`augment.contamination.clean_training`, which refuses evaluation sets outright) is searched; a
program that reproduces every train pair *and* every known test output becomes a code-from-examples
task of the corpus. The files are the ones `arc-ttt synth` writes (challenges.json, solutions.json,
programs.jsonl, synth_report.json), so `arc-ttt pretrain --corpus DIR` reads them unchanged, and
checks them against the evaluation grids again when it loads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from solve.dsl_search.search import search_task


def _search_one(args: tuple[Any, int, float]) -> tuple[str, str | None, int | None, float]:
    task, depth, seconds = args
    t0 = time.monotonic()
    result = search_task(task, depth, seconds, max_solutions=2, near_misses=0)
    for f in result.solutions:
        if all(o.shape == y.shape and np.array_equal(o, y) for o, y in zip(f.test_outputs, task.test_outputs)):
            return task.id, f.source, f.depth, time.monotonic() - t0
    return task.id, None, None, time.monotonic() - t0


def clean_tasks(datasets: Sequence[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The clean tasks of the training datasets, each id once (ARC-AGI-2 training repeats most of
    ARC-AGI-1 training), and each dataset's contamination report."""
    from augment.contamination import clean_training

    seen, tasks, reports = set(), [], []
    for name in datasets:
        kept, report = clean_training(name)
        reports.append({k: v for k, v in report.items() if k != "excluded_ids"} | {"repeated_ids": sum(t.id in seen for t in kept)})
        for t in kept:
            if t.id not in seen and t.test_outputs is not None:
                seen.add(t.id)
                tasks.append(t)
    return tasks, reports


def build_corpus(
    datasets: Sequence[str], out: str | Path, depth: int = 2, seconds: float = 10.0, workers: int = 1,
    on_done: Callable[[str, bool], None] | None = None, command: str | None = None, limit: int | None = None,
) -> dict[str, Any]:
    """Search every clean task (the first `limit` of them), write the tasks with a program that is right
    on train and test, and return the report (also written as synth_report.json)."""
    tasks, reports = clean_tasks(datasets)
    tasks = tasks[:limit] if limit is not None else tasks
    jobs = [(t, depth, seconds) for t in tasks]
    found: dict[str, tuple[str, int]] = {}
    t0 = time.monotonic()
    if workers <= 1:
        results = map(_search_one, jobs)
        for tid, src, d, _ in results:
            if src is not None:
                found[tid] = (src, d)
            if on_done:
                on_done(tid, src is not None)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for tid, src, d, _ in pool.imap_unordered(_search_one, jobs):
                if src is not None:
                    found[tid] = (src, d)
                if on_done:
                    on_done(tid, src is not None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    challenges, solutions = {}, {}
    with open(out / "programs.jsonl", "w", encoding="utf-8") as programs:
        for t in tasks:
            if t.id not in found:
                continue
            src, d = found[t.id]
            tid = f"real-{t.id}"
            challenges[tid] = {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                               "test": [{"input": x.tolist()} for x in t.test_inputs]}
            solutions[tid] = [y.tolist() for y in t.test_outputs]
            programs.write(json.dumps({"task_id": tid, "source": src, "depth": d, "origin": "dsl_search"}) + "\n")
    (out / "challenges.json").write_text(json.dumps(challenges, separators=(",", ":")), encoding="utf-8")
    (out / "solutions.json").write_text(json.dumps(solutions, separators=(",", ":")), encoding="utf-8")
    report = {
        "kind": "real tasks with DSL programs", "datasets": list(datasets), "depth": depth, "seconds_per_task": seconds,
        "searched": len(tasks), "accepted": len(found), "seconds": round(time.monotonic() - t0, 1),
        # Only clean tasks were searched (clean_training): the corpus holds no evaluation grid.
        "contamination": {"clean": True, "datasets": reports}, "command": command,
    }
    (out / "synth_report.json").write_text(json.dumps(report, indent=1))
    return report
