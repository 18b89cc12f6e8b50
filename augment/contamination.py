"""Keep evaluation grids out of anything we train on or generate.

ARC-AGI-2 training holds 376 of the 400 ARC-AGI-1 evaluation tasks, and a synthetic task built from a
training grid could reproduce an evaluation grid by chance. A grid is identified by its shape and
cells (`grid_key`); a task is contaminated when any of its grids, input or output, train or test,
is also a grid of an evaluation set. Evaluation grids are read once per process, on first use.
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


def contaminated(task: Task) -> bool:
    """Whether the task shares any grid with an evaluation set."""
    keys = evaluation_grid_keys()
    return any(grid_key(g) in keys for g in task_grids(task))


def clean_training(name: str) -> tuple[list[Task], dict]:
    """The tasks of a training dataset that share no grid with the evaluation sets, and a report
    {dataset, total, excluded, excluded_ids}; evaluation datasets are refused with ValueError."""
    if name in EVALUATION_DATASETS:
        raise ValueError(f"{name} is an evaluation set: nothing may be trained on or generated from it")
    if name not in TRAINING_DATASETS:
        raise ValueError(f"unknown training dataset {name!r}; choose one of {', '.join(TRAINING_DATASETS)}")
    tasks = load_dataset(name, strict=True).tasks
    kept, excluded = [], []
    for t in tasks:
        (excluded if contaminated(t) else kept).append(t)
    report = {
        "dataset": name,
        "total": len(tasks),
        "excluded": len(excluded),
        "excluded_ids": sorted(t.id for t in excluded),
    }
    return kept, report
