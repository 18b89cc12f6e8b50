"""Invertible augmentations: the dihedral group D8, color permutations and train-pair order.

An `Augmentation` is plain, hashable data. Geometry and color act on every grid of a task the same
way and commute, so a whole augmentation is `colors[dihedral(grid)]` and its inverse undoes both.
Order shuffles only reorder the train pairs; they never change a grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Callable

import numpy as np

from augment.tasks import NUM_COLORS, Pair, Task

# Index -> (name, function). np.rot90 turns counter-clockwise.
_D8: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("identity", lambda g: g),
    ("rot90", lambda g: np.rot90(g, 1)),
    ("rot180", lambda g: np.rot90(g, 2)),
    ("rot270", lambda g: np.rot90(g, 3)),
    ("flip_ud", lambda g: g[::-1, :]),
    ("flip_lr", lambda g: g[:, ::-1]),
    ("transpose", lambda g: g.T),
    ("anti_transpose", lambda g: np.rot90(g, 2).T),
)
DIHEDRAL_NAMES = tuple(name for name, _ in _D8)
IDENTITY_COLORS = tuple(range(NUM_COLORS))


def dihedral(index: int, grid: np.ndarray) -> np.ndarray:
    """Apply dihedral element `index` (0..7); returns a contiguous copy."""
    return np.ascontiguousarray(_D8[index][1](grid))


@cache
def _tables() -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Composition and inverse tables, read off a grid with no symmetry (computed once, on first use)."""
    probe = np.arange(6).reshape(2, 3)
    images = [dihedral(i, probe) for i in range(8)]

    def index_of(g: np.ndarray) -> int:
        return next(i for i, im in enumerate(images) if im.shape == g.shape and np.array_equal(im, g))

    compose = tuple(tuple(index_of(dihedral(b, dihedral(a, probe))) for b in range(8)) for a in range(8))
    inverse = tuple(next(b for b in range(8) if compose[a][b] == 0) for a in range(8))
    return compose, inverse


def dihedral_then(a: int, b: int) -> int:
    """The element that applies `a` first, then `b`."""
    return _tables()[0][a][b]


def dihedral_inverse(a: int) -> int:
    return _tables()[1][a]


def random_colors(rng: np.random.Generator, keep_background: bool = True) -> tuple[int, ...]:
    """A uniformly random color permutation; color 0 maps to itself when `keep_background`."""
    if keep_background:
        return (0, *(int(c) for c in rng.permutation(np.arange(1, NUM_COLORS))))
    return tuple(int(c) for c in rng.permutation(NUM_COLORS))


@dataclass(frozen=True)
class Augmentation:
    """Dihedral element, then color map `new = colors[old]`; `order[i]` = original index of train pair i."""

    dihedral: int = 0
    colors: tuple[int, ...] = IDENTITY_COLORS
    order: tuple[int, ...] | None = None
    _inv_colors: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral index {self.dihedral} is not in 0..7")
        if sorted(self.colors) != list(IDENTITY_COLORS):
            raise ValueError(f"colors {self.colors} is not a permutation of 0..9")
        if self.order is not None and sorted(self.order) != list(range(len(self.order))):
            raise ValueError(f"order {self.order} is not a permutation")
        object.__setattr__(self, "_inv_colors", np.argsort(np.array(self.colors)).astype(np.uint8))

    @property
    def name(self) -> str:
        """Readable and unique: 'rot90+c0213456789+o201' (parts at identity are left out)."""
        parts = [DIHEDRAL_NAMES[self.dihedral]]
        if self.colors != IDENTITY_COLORS:
            parts.append("c" + "".join(map(str, self.colors)))
        if self.order is not None and self.order != tuple(range(len(self.order))):
            parts.append("o" + ",".join(map(str, self.order)))
        return "+".join(parts)

    @property
    def is_identity(self) -> bool:
        return self.name == "identity"

    def apply_grid(self, grid: np.ndarray) -> np.ndarray:
        lut = np.array(self.colors, dtype=np.uint8)
        return lut[dihedral(self.dihedral, grid)]

    def invert_grid(self, grid: np.ndarray) -> np.ndarray:
        return dihedral(dihedral_inverse(self.dihedral), self._inv_colors[grid])

    def then(self, other: Augmentation) -> Augmentation:
        """Apply `self`, then `other`."""
        colors = tuple(other.colors[c] for c in self.colors)
        if self.order is None or other.order is None:
            order = self.order or other.order
        else:
            order = tuple(self.order[i] for i in other.order)
        return Augmentation(dihedral_then(self.dihedral, other.dihedral), colors, order)

    def inverse(self) -> Augmentation:
        order = None if self.order is None else tuple(int(i) for i in np.argsort(self.order))
        return Augmentation(dihedral_inverse(self.dihedral), tuple(int(c) for c in self._inv_colors), order)

    def apply_task(self, task: Task) -> Task:
        """The same transform on every grid of the task; train pairs reordered by `order`."""
        if self.order is not None and len(self.order) != len(task.train):
            raise ValueError(f"task {task.id}: order has {len(self.order)} entries for {len(task.train)} train pairs")
        idx = self.order if self.order is not None else range(len(task.train))
        train = tuple(Pair(self.apply_grid(task.train[i].input), self.apply_grid(task.train[i].output)) for i in idx)
        tests = tuple(self.apply_grid(g) for g in task.test_inputs)
        outs = None if task.test_outputs is None else tuple(self.apply_grid(g) for g in task.test_outputs)
        return Task(task.id, train, tests, outs)
