"""Keep evaluation grids out of anything we train on or generate.

ARC-AGI-2 training holds 376 of the 400 ARC-AGI-1 evaluation tasks, and a synthetic task built from a
training grid could reproduce an evaluation grid by chance. A grid is identified by its shape and
cells (`grid_key`); a task is contaminated when any of its grids, input or output, train or test,
leaks an evaluation grid (`leaks`): it is that grid, or, from MIN_TWIN_CELLS cells on, the same
picture turned, mirrored or recolored (`twin_key`: the geometric and color augmentations would
otherwise turn a twin into the evaluation grid itself). A one-color grid (a 1x1 answer, a blank
canvas) leaks nothing: it says nothing about any task, and matching it only dropped unrelated tasks.
Evaluation grids are read once per process, on first use.
"""

from __future__ import annotations

from functools import cache
from typing import Iterable, Iterator

import numpy as np

from augment.tasks import DATASETS, Task, load_dataset

EVALUATION_DATASETS = ("arc-agi-1/evaluation", "arc-agi-2/evaluation")
TRAINING_DATASETS = tuple(d for d in DATASETS if d not in EVALUATION_DATASETS)


def grid_key(grid: np.ndarray) -> bytes:
    """Shape and cells of a grid as bytes: equal keys mean equal grids (2x3 and 3x2 differ)."""
    g = np.ascontiguousarray(grid, dtype=np.uint8)
    return bytes(g.shape) + g.tobytes()


MIN_TWIN_CELLS = 25  # smaller grids are matched exactly only: few small pictures exist, twins would be chance


def is_trivial(grid: np.ndarray) -> bool:
    """Whether the grid is one color throughout (every 1x1 grid is)."""
    return bool((grid == grid.flat[0]).all())


def twin_key(grid: np.ndarray) -> bytes:
    """A key equal for two grids exactly when one is the other turned or mirrored (the 8 symmetries of
    the square) and recolored one-to-one: the smallest, over the 8 symmetries, of the shape and the
    cells renumbered by order of first appearance."""
    g = np.ascontiguousarray(grid, dtype=np.uint8)
    best = None
    for k in range(4):
        for view in (np.rot90(g, k), np.rot90(g, k).T):
            flat = np.ascontiguousarray(view).ravel()
            colors, first = np.unique(flat, return_index=True)
            order = np.empty(10, dtype=np.uint8)
            order[colors[np.argsort(first)]] = np.arange(colors.size, dtype=np.uint8)
            key = bytes(view.shape) + order[flat].tobytes()
            if best is None or key < best:
                best = key
    return best


def task_grids(task: Task) -> Iterator[np.ndarray]:
    """Every grid of a task: train inputs and outputs, test inputs, and test outputs when known."""
    for pair in task.train:
        yield pair.input
        yield pair.output
    yield from task.test_inputs
    yield from task.test_outputs or ()


def keys_of(tasks: Iterable[Task]) -> frozenset[bytes]:
    """The keys of every grid of the tasks."""
    return frozenset(grid_key(g) for t in tasks for g in task_grids(t))


@cache
def evaluation_grid_keys() -> frozenset[bytes]:
    """Keys of every grid (train/test, input/output) of ARC-AGI-1 and ARC-AGI-2 evaluation."""
    return frozenset().union(*(keys_of(load_dataset(name, strict=True).tasks) for name in EVALUATION_DATASETS))


@cache
def evaluation_twin_keys() -> frozenset[bytes]:
    """Twin keys of every evaluation grid of MIN_TWIN_CELLS cells or more that is not one color."""
    return frozenset(
        twin_key(g)
        for name in EVALUATION_DATASETS
        for t in load_dataset(name, strict=True).tasks
        for g in task_grids(t)
        if g.size >= MIN_TWIN_CELLS and not is_trivial(g)
    )


def leaks(grid: np.ndarray) -> bool:
    """Whether the grid gives an evaluation grid away: it is one (unless one color), or, from
    MIN_TWIN_CELLS cells on, a turned, mirrored or recolored copy of one."""
    if is_trivial(grid):
        return False
    if grid_key(grid) in evaluation_grid_keys():
        return True
    return grid.size >= MIN_TWIN_CELLS and twin_key(grid) in evaluation_twin_keys()


def contaminated(task: Task) -> bool:
    """Whether any grid of the task leaks an evaluation grid (see `leaks`)."""
    return any(leaks(g) for g in task_grids(task))


def clean_training(name: str) -> tuple[list[Task], dict]:
    """The tasks of a training dataset none of whose grids leaks an evaluation grid, and a report
    {dataset, total, excluded, excluded_ids, twin_only_ids, kept_trivial_ids}: the excluded tasks
    that share no grid exactly (only a twin), and the kept tasks that share only one-color grids
    exactly (kept on purpose). Evaluation datasets are refused with ValueError."""
    if name in EVALUATION_DATASETS:
        raise ValueError(f"{name} is an evaluation set: nothing may be trained on or generated from it")
    if name not in TRAINING_DATASETS:
        raise ValueError(f"unknown training dataset {name!r}; choose one of {', '.join(TRAINING_DATASETS)}")
    tasks = load_dataset(name, strict=True).tasks
    kept, excluded, twin_only, kept_trivial = [], [], [], []
    keys = evaluation_grid_keys()
    for t in tasks:
        exact = [g for g in task_grids(t) if grid_key(g) in keys]
        if contaminated(t):
            excluded.append(t)
            if not exact:
                twin_only.append(t.id)
        else:
            kept.append(t)
            if exact:
                kept_trivial.append(t.id)
    report = {
        "dataset": name,
        "total": len(tasks),
        "excluded": len(excluded),
        "excluded_ids": sorted(t.id for t in excluded),
        "twin_only_ids": sorted(twin_only),
        "kept_trivial_ids": sorted(kept_trivial),
    }
    return kept, report
