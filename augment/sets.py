"""Named augmentation sets (for ablations) and a seeded stream of augmentations drawn from one.

A set says which kinds of augmentation it uses; a stream yields augmentations in a fixed order for a
seed: identity first (the task as given matters most), then dihedral elements cycled so that all 8
appear before any repeats, each with a fresh random color permutation / train order where the set
uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from augment.transforms import IDENTITY_COLORS, Augmentation, random_colors


@dataclass(frozen=True)
class AugmentSet:
    name: str
    geometric: bool
    color: bool
    order: bool
    default_samples: int
    help: str


SETS: dict[str, AugmentSet] = {
    s.name: s
    for s in (
        AugmentSet("none", False, False, False, 0, "leave-one-out tasks as given, no augmentation"),
        AugmentSet("geometric", True, False, False, 32, "the 8 rotations/reflections/transposes"),
        AugmentSet("color", False, True, False, 32, "random color permutations"),
        AugmentSet("geometric+color", True, True, False, 32, "dihedral x color permutations"),
        AugmentSet("all", True, True, True, 32, "dihedral x color permutations x train-order shuffles"),
    )
}


def get_set(name: str) -> AugmentSet:
    if name not in SETS:
        raise ValueError(f"unknown augmentation set {name!r}; choose one of {', '.join(SETS)}")
    return SETS[name]


def augmentation_stream(
    spec: AugmentSet, n_train: int, rng: np.random.Generator, permute_background: bool = False
) -> Iterator[Augmentation]:
    """Endless seeded augmentations of `spec`; identity first. Callers dedupe and stop."""
    yield Augmentation(order=tuple(range(n_train)) if spec.order else None)
    if not (spec.geometric or spec.color or spec.order):
        return
    if not (spec.color or spec.order):  # geometry alone: exactly 7 more elements exist
        yield from (Augmentation(d) for d in range(1, 8))
        return
    step = 1
    while True:
        d = step % 8 if spec.geometric else 0
        colors = random_colors(rng, keep_background=not permute_background) if spec.color else IDENTITY_COLORS
        order = tuple(int(i) for i in rng.permutation(n_train)) if spec.order else None
        yield Augmentation(d, colors, order)
        step += 1
