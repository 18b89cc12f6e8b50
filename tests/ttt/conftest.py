"""Small made-up tasks for the ttt tests (the tokenizer and tiny-model fixtures are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from augment.tasks import Pair, Task


@pytest.fixture
def flip_task() -> Task:
    """Small 'flip upside down' task: 3 train pairs, one test pair."""
    rng = np.random.default_rng(7)
    grids = [rng.integers(0, 10, size=(3, 3), dtype=np.uint8) for _ in range(4)]
    pairs = tuple(Pair(x, x[::-1].copy()) for x in grids)
    return Task("flip", pairs[:3], (pairs[3].input,), (pairs[3].output,))


@pytest.fixture
def color_task() -> Task:
    """A different small task: recolor 1 -> 2."""
    rng = np.random.default_rng(11)
    grids = [rng.integers(0, 3, size=(2, 4), dtype=np.uint8) for _ in range(4)]
    pairs = tuple(Pair(x, np.where(x == 1, 2, x).astype(np.uint8)) for x in grids)
    return Task("recolor", pairs[:3], (pairs[3].input,), (pairs[3].output,))
