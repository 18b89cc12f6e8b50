"""Real training tasks with programs: the DSL search over clean training sets, as a pretraining corpus.

Every task of the given training datasets that shares no grid with an evaluation set
(`augment.contamination.clean_training`, which refuses evaluation sets outright) is searched; a
program that reproduces every train pair *and* every known test output becomes a code-from-examples
task of the corpus, and so do up to `views_per_task` augmented views of it (a turn or flip and a colour
permutation of every grid) with the program that solves each (`solve.dsl_search.program_views`:
colour constants mapped, conjugated by the turn where the program is not equivariant, every view
verified on train and test). The files are the ones `arc-ttt synth` writes (challenges.json, solutions.json,
programs.jsonl, synth_report.json), so `arc-ttt pretrain --corpus DIR` reads them unchanged, and
checks them against the evaluation grids again when it loads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from solve.dsl_search.program_views import views
from solve.dsl_search.search import Found, search_task


def _search_one(args: tuple[Any, int, float]) -> tuple[str, Found | None, float]:
    task, depth, seconds = args
    t0 = time.monotonic()
    result = search_task(task, depth, seconds, max_solutions=2, near_misses=0)
    for f in result.solutions:
        if all(o.shape == y.shape and np.array_equal(o, y) for o, y in zip(f.test_outputs, task.test_outputs)):
            return task.id, f, time.monotonic() - t0
    return task.id, None, time.monotonic() - t0


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
    views_per_task: int = 0, seed: int = 0,
) -> dict[str, Any]:
    """Search every clean task (the first `limit` of them), write the tasks with a program that is right
    on train and test (and up to `views_per_task` augmented views of each, drawn with `seed`), and return
    the report (also written as synth_report.json)."""
    tasks, reports = clean_tasks(datasets)
    tasks = tasks[:limit] if limit is not None else tasks
    jobs = [(t, depth, seconds) for t in tasks]
    found: dict[str, Found] = {}
    t0 = time.monotonic()
    if workers <= 1:
        for tid, f, _ in map(_search_one, jobs):
            if f is not None:
                found[tid] = f
            if on_done:
                on_done(tid, f is not None)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for tid, f, _ in pool.imap_unordered(_search_one, jobs):
                if f is not None:
                    found[tid] = f
                if on_done:
                    on_done(tid, f is not None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    challenges, solutions = {}, {}
    n_views = conjugated = 0
    with open(out / "programs.jsonl", "w", encoding="utf-8") as programs:
        for i, t in enumerate(tasks):
            if t.id not in found:
                continue
            f = found[t.id]
            made = views(t, f.program, views_per_task, np.random.default_rng([seed, i])) if views_per_task else []
            for tid, task, program, view in [(f"real-{t.id}", t, f.program, "identity")] + [
                    (f"real-{t.id}-v{k}", v, p, aug.name) for k, (aug, v, p) in enumerate(made, 1)]:
                challenges[tid] = {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train],
                                   "test": [{"input": x.tolist()} for x in task.test_inputs]}
                solutions[tid] = [y.tolist() for y in task.test_outputs]
                programs.write(json.dumps({"task_id": tid, "source": program.source(), "depth": f.depth, "origin": "dsl_search",
                                           "view": view}) + "\n")
            n_views += len(made)
            conjugated += sum(len(p.steps) > len(f.program.steps) for _, _, p in made)
    (out / "challenges.json").write_text(json.dumps(challenges, separators=(",", ":")), encoding="utf-8")
    (out / "solutions.json").write_text(json.dumps(solutions, separators=(",", ":")), encoding="utf-8")
    report = {
        "kind": "real tasks with DSL programs", "datasets": list(datasets), "depth": depth, "seconds_per_task": seconds,
        "searched": len(tasks), "accepted": len(found), "views": n_views, "views_conjugated": conjugated,
        "views_per_task": views_per_task, "seed": seed, "seconds": round(time.monotonic() - t0, 1),
        # Only clean tasks were searched (clean_training): the corpus holds no evaluation grid.
        "contamination": {"clean": True, "datasets": reports}, "command": command,
    }
    (out / "synth_report.json").write_text(json.dumps(report, indent=1))
    return report
