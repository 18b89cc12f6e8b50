"""Augmented views of tasks with known programs: every view's program solves its view, colour constants
follow the permutation, and a program that does not turn with the grids is conjugated."""

import numpy as np
import pytest

from augment.tasks import Pair, Task
from augment.transforms import Augmentation, dihedral
from solve.dsl_search.program_views import conjugate, dihedral_primitives, program_view, recolor_program, solves, views
from solve.synth.program import Program, Step

GRID = "Grid"


def _task(fn, grids) -> Task:
    pairs = tuple(Pair(g, fn(g)) for g in grids[:-1])
    return Task("t", pairs, (grids[-1],), (fn(grids[-1]),))


def _grids(seed=0, n=4):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4, size=(3 + i, 5)).astype(np.uint8) for i in range(n)]


def _prog(*steps) -> Program:
    return Program(tuple(steps), len(steps))


SWAP_12 = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)


@pytest.mark.parametrize("index", range(1, 8))
def test_dihedral_primitives_match_augment(index):
    import solve.dsl as dsl

    g = np.arange(12).reshape(3, 4)
    assert np.array_equal(np.asarray(getattr(dsl, dihedral_primitives()[index])(g)), dihedral(index, g))


def test_recolor_maps_colour_and_colour_map_constants_only():
    p = _prog(Step("recolor", (("ref", 0), ("const", 1), ("const", 2)), GRID),
              Step("recolor_map", (("ref", 1), ("const", {1: 3, 2: 1})), GRID))
    q = recolor_program(p, SWAP_12)
    assert q.steps[0].args == (("ref", 0), ("const", 2), ("const", 1))
    assert q.steps[1].args[1] == ("const", {2: 3, 1: 2})


def test_conjugated_program_solves_the_turned_task():
    # shift right is not dihedral-equivariant: under a quarter turn the same program is wrong
    p = _prog(Step("flip_h", (("ref", 0),), GRID), Step("rot90", (("ref", 1),), GRID))
    task = _task(lambda g: np.asarray(p.compile()(g)[-1]), _grids())
    aug = Augmentation(1)
    view = aug.apply_task(task)
    assert not solves(p, view)
    assert solves(conjugate(p, 1), view)
    made = program_view(task, p, aug)
    assert made is not None and len(made[1].steps) == len(p.steps) + 2


def test_equivariant_program_stays_as_it_is():
    p = _prog(Step("recolor", (("ref", 0), ("const", 1), ("const", 2)), GRID))
    task = _task(lambda g: np.asarray(p.compile()(g)[-1]), _grids(1))
    view, prog = program_view(task, p, Augmentation(2, SWAP_12))
    assert prog.steps[0].args == (("ref", 0), ("const", 2), ("const", 1)) and solves(prog, view)


def test_views_are_verified_distinct_and_deterministic():
    p = _prog(Step("flip_v", (("ref", 0),), GRID))
    task = _task(lambda g: np.asarray(p.compile()(g)[-1]), _grids(2))
    made = views(task, p, 5, np.random.default_rng(0))
    again = views(task, p, 5, np.random.default_rng(0))
    assert len(made) == 5 and [a for a, _, _ in made] == [a for a, _, _ in again]
    assert len({a for a, _, _ in made}) == 5 and all(not a.is_identity for a, _, _ in made)
    assert all(solves(prog, view) for _, view, prog in made)


def test_a_view_no_program_of_ours_solves_is_dropped():
    right = _prog(Step("flip_v", (("ref", 0),), GRID))
    wrong = _prog(Step("rot180", (("ref", 0),), GRID))  # not the rule in any orientation
    task = _task(lambda g: np.asarray(right.compile()(g)[-1]), _grids(3))
    assert program_view(task, right, Augmentation(1, SWAP_12)) is not None
    assert program_view(task, wrong, Augmentation(1, SWAP_12)) is None
    assert views(task, wrong, 3, np.random.default_rng(0)) == []
