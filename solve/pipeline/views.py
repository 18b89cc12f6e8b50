"""The augmented views of a task that programs are written for and grids predicted and scored under.

Its own module so that the stages and the search (solve.pipeline.search), which both need it, do not
import each other.
"""

from __future__ import annotations

import numpy as np

from augment.sets import augmentation_stream, get_set
from augment.tasks import Task
from augment.transforms import Augmentation
from solve.pipeline.runconfig import RunConfig


def task_views(task: Task, cfg: RunConfig, k: int) -> list[Augmentation]:
    """The first `k` distinct task-level augmentations of the configured set (identity first)."""
    if k <= 0:
        return []
    spec = get_set(cfg.augment.set)
    views, seen = [], set()
    stream = augmentation_stream(spec, len(task.train), np.random.default_rng(cfg.run.seed + 1), cfg.augment.permute_background)
    for aug in stream:
        if aug.name not in seen:
            seen.add(aug.name)
            views.append(aug)
        if len(views) >= k or len(seen) > 64 * k:
            break
    return views
