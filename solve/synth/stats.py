"""How ARC-like a synthetic corpus is: the shares of degenerate tasks, shapes kept, depths, primitives.

Read from a corpus directory (`arc-ttt synth` output: challenges.json, solutions.json, programs.jsonl).
Every pair counts, train and test (the test outputs are in solutions.json). Shares are of all tasks:
- output_is_input: some pair's output equals its input;
- repeated_output: two pairs of the task have the same output;
- few_cells_changed: every pair keeps its shape and fewer than 3 % of all the task's cells change;
- shape_kept: every pair's output has its input's shape (ARC-AGI-1 training: 262 of 400, 65.5 %);
- over_budget: the train pairs and test inputs hold more than check.MAX_PROMPT_CELLS cells and rows
  (a prompt of ~1024 tokens cannot hold the task: pretraining drops it);
- one_call: among a sample of the tasks whose program has depth >= 2 (the first `sample` of them, in
  task order), the share that `one_call(task)` accepts. The CLI passes the DSL search at depth 1 (one
  call that reproduces every train and test output; solve.dsl_search sits above this package, so it
  comes in as an argument). The search has a time limit per task: a busy machine may miss a few.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from augment.tasks import Task, load_challenges
from solve.synth.check import MAX_PROMPT_CELLS, prompt_cells

FEW_CELLS = 0.03  # a task that changes fewer than this share of its cells shows almost nothing


def _pairs(task: Task) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(p.input, p.output) for p in task.train] + list(zip(task.test_inputs, task.test_outputs or ()))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def task_flags(task: Task) -> dict[str, bool]:
    """The per-task degeneracy flags that the corpus shares count (see the module doc)."""
    pairs = _pairs(task)
    outs = [o for _, o in pairs]
    kept = all(i.shape == o.shape for i, o in pairs)
    changed = sum(int((i != o).sum()) for i, o in pairs) if kept else None
    cells = sum(i.size for i, _ in pairs)
    return {
        "output_is_input": any(_same(i, o) for i, o in pairs),
        "repeated_output": any(_same(a, b) for k, a in enumerate(outs) for b in outs[k + 1 :]),
        "few_cells_changed": kept and changed < FEW_CELLS * cells,
        "shape_kept": kept,
        "over_budget": prompt_cells([p.input for p in task.train] + list(task.test_inputs), [p.output for p in task.train], len(task.train))
        > MAX_PROMPT_CELLS,
    }


def corpus_stats(
    directory: str | Path, one_call: Callable[[Task], bool] | None = None, sample: int = 100, note: str = ""
) -> dict[str, Any]:
    """The stats of the corpus in `directory`; the first `sample` depth>=2 tasks go through `one_call`
    (None skips it); `note` says what one_call is, for the report."""
    directory = Path(directory)
    loaded = load_challenges(directory / "challenges.json", directory / "solutions.json", strict=True)
    tasks = sorted(loaded.tasks, key=lambda t: t.id)
    records = {}
    programs = directory / "programs.jsonl"
    if programs.exists():
        for line in programs.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            records[r["task_id"]] = r
    n = len(tasks)
    flags = [task_flags(t) for t in tasks]
    shares = {k: round(sum(f[k] for f in flags) / n, 4) if n else None for k in (flags[0] if flags else ())}
    deep = [t for t in tasks if records.get(t.id, {}).get("depth", 0) >= 2][:sample] if one_call else []
    solved = sum(one_call(t) for t in deep)
    depths = Counter(r["depth"] for r in records.values())
    prims = Counter(p for r in records.values() for p in r["primitives"])
    return {
        "dir": str(directory),
        "tasks": n,
        "shares": shares,
        "one_call": {"sample": len(deep), "solved": solved, "share": round(solved / len(deep), 4) if deep else None, "how": note},
        "depths": {str(k): v for k, v in sorted(depths.items())},
        "primitives": dict(prims.most_common()),
    }


def format_stats(stats: dict[str, Any], top: int = 25) -> str:
    """A plain-text report of `corpus_stats`."""
    lines = [f"{stats['dir']}: {stats['tasks']} tasks"]
    for k, v in stats["shares"].items():
        lines.append(f"  {k:<18} {100 * v:5.1f} %")
    oc = stats["one_call"]
    if oc["sample"]:
        lines.append(
            f"  {'one_call':<18} {100 * oc['share']:5.1f} %  ({oc['solved']} of a sample of {oc['sample']} depth>=2 tasks; {oc['how']})"
        )
    lines.append("  depths: " + ", ".join(f"{k}: {v}" for k, v in stats["depths"].items()))
    prims = list(stats["primitives"].items())
    lines.append(f"  primitives ({len(prims)} used; top {min(top, len(prims))}): " + ", ".join(f"{k} {v}" for k, v in prims[:top]))
    return "\n".join(lines)
