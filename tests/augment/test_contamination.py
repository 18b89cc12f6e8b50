"""The contamination guard: evaluation grids are known, tasks sharing one are flagged, and clean
training sets leave them out (ARC-AGI-2 training holds 376 ARC-AGI-1 evaluation tasks)."""

from __future__ import annotations

import numpy as np
import pytest

from augment.contamination import (
    EVALUATION_DATASETS,
    clean_training,
    contaminated,
    evaluation_grid_keys,
    grid_key,
    task_grids,
)
from augment.tasks import Pair, Task, load_dataset


@pytest.fixture(scope="module")
def eval1() -> list[Task]:
    return load_dataset("arc-agi-1/evaluation").tasks


def test_grid_key_tells_shapes_apart():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert grid_key(a) != grid_key(a.reshape(3, 2))
    assert grid_key(a) == grid_key(a.copy()) == grid_key(a.astype(np.int64))
    assert grid_key(a) != grid_key(a.T)


def test_every_evaluation_grid_is_a_key(eval1):
    keys = evaluation_grid_keys()
    assert evaluation_grid_keys() is keys  # cached: read once per process
    for name in EVALUATION_DATASETS:
        for t in load_dataset(name).tasks:
            assert all(grid_key(g) in keys for g in task_grids(t)), t.id
    # Test outputs count too: they are the answers.
    assert grid_key(eval1[0].test_outputs[0]) in keys


def test_contaminated_flags_any_shared_grid(eval1):
    odd = np.full((29, 29), 7, dtype=np.uint8)
    odd[3, 5] = 2
    assert grid_key(odd) not in evaluation_grid_keys()
    clean = Task("x", (Pair(odd, odd.T.copy()),), (odd[:5],), None)
    assert not contaminated(clean)
    planted = eval1[3].test_outputs[0]
    assert contaminated(Task("x", (Pair(odd, odd.T.copy()),), (odd[:5],), (planted,)))
    assert contaminated(Task("x", (Pair(odd, planted),), (odd[:5],), None))
    assert all(contaminated(t) for t in eval1[:20])


def test_clean_arc_agi_2_training_drops_the_arc_agi_1_evaluation_overlap(eval1):
    tasks, report = clean_training("arc-agi-2/training")
    overlap = {t.id for t in eval1} & {t.id for t in load_dataset("arc-agi-2/training").tasks}
    assert len(overlap) == 376
    assert overlap <= set(report["excluded_ids"])
    assert report["dataset"] == "arc-agi-2/training"
    assert report["total"] == 1000 == len(tasks) + report["excluded"]
    assert report["excluded"] == len(report["excluded_ids"]) >= 376
    assert report["excluded_ids"] == sorted(report["excluded_ids"])
    assert not any(contaminated(t) for t in tasks)
    assert not overlap & {t.id for t in tasks}


def test_clean_arc_agi_1_training_keeps_most_tasks():
    tasks, report = clean_training("arc-agi-1/training")
    assert report["total"] == 400 and len(tasks) == 400 - report["excluded"]
    assert 0 < report["excluded"] < 40  # only tasks sharing small grids (e.g. a 1x1 answer) with evaluation
    assert not any(contaminated(t) for t in tasks)


@pytest.mark.parametrize("name", [*EVALUATION_DATASETS, "arc-agi-3/training", "nonsense"])
def test_clean_training_refuses_evaluation_and_unknown_sets(name):
    with pytest.raises(ValueError, match="evaluation|unknown"):
        clean_training(name)
