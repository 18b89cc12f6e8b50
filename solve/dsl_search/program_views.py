"""Augmented views of a task whose program is known, each with the program that solves the view.

A view applies an `augment.transforms.Augmentation` (a dihedral element, then a colour permutation) to
every grid of the task. Its program is the known one with its colour constants mapped through the
permutation (a `Color` argument, both sides of a `ColorMap`); where the view turns or flips the grids,
the program unchanged is tried first (many rules are dihedral-equivariant: recolour, fill, crop) and
otherwise conjugated: the inverse turn on the input, the program, the turn on its result. Every view
program is run on the view's train and test pairs and kept only when it reproduces all of them, so a
colour constant that was really a rank or a direction that does not turn cannot give a wrong sample.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from augment.contamination import leaks
from augment.tasks import Task
from augment.transforms import Augmentation, dihedral, dihedral_inverse, random_colors
from solve.dsl import registry as reg
from solve.synth.program import Program, Step

# What a DSL call raises on a grid it does not apply to (as in solve.dsl_search.search).
_NOT_APPLICABLE = (ValueError, IndexError, KeyError, ZeroDivisionError, TypeError, OverflowError)
_TURNS = ("rot90", "rot180", "rot270", "flip_h", "flip_v", "flip_diag", "flip_antidiag")


@cache
def dihedral_primitives() -> dict[int, str]:
    """augment's dihedral index -> the DSL primitive with the same effect, read off a grid with no symmetry."""
    import solve.dsl as dsl

    probe = np.arange(6).reshape(2, 3)
    out = {}
    for i in range(1, 8):
        want = dihedral(i, probe)
        out[i] = next(n for n in _TURNS if np.array_equal(np.asarray(getattr(dsl, n)(probe)), want))
    return out


def recolor_program(program: Program, colors: tuple[int, ...]) -> Program:
    """The program with every colour constant mapped old -> colors[old]."""
    prims = reg.by_name()
    steps = []
    for s in program.steps:
        types = prims[s.prim].param_types if s.prim in prims else ()
        args = []
        for j, (kind, v) in enumerate(s.args):
            t = types[j] if j < len(types) else None
            if kind == "const" and t == reg.COLOR and isinstance(v, (int, np.integer)):
                v = colors[int(v)]
            elif kind == "const" and t == reg.COLOR_MAP and isinstance(v, dict):
                v = {colors[int(k)]: colors[int(c)] for k, c in v.items()}
            args.append((kind, v))
        steps.append(Step(s.prim, tuple(args), s.returns))
    return Program(tuple(steps), program.depth)


def conjugate(program: Program, index: int) -> Program:
    """turn . program . turn^-1 for dihedral element `index`: solves the view turned by `index`."""
    if index == 0:
        return program
    prims = dihedral_primitives()
    first = Step(prims[dihedral_inverse(index)], (("ref", 0),), reg.GRID)
    # value 0 (the input) becomes value 1 (the turned input); every later value moves up by one
    shifted = [Step(s.prim, tuple(("ref", v + 1) if k == "ref" else (k, v) for k, v in s.args), s.returns) for s in program.steps]
    last = Step(prims[index], (("ref", len(shifted) + 1),), reg.GRID)
    return Program((first, *shifted, last), program.depth)


def solves(program: Program, task: Task) -> bool:
    """True when the program reproduces every train output and every known test output."""
    run = program.compile()
    pairs = [(p.input, p.output) for p in task.train] + list(zip(task.test_inputs, task.test_outputs or ()))
    for x, y in pairs:
        try:
            out = np.asarray(run(x.copy())[-1])
        except _NOT_APPLICABLE:
            return False
        if out.shape != y.shape or not np.array_equal(out, y):
            return False
    return True


def program_view(task: Task, program: Program, aug: Augmentation) -> tuple[Task, Program] | None:
    """The view of `task` under `aug` and a program that solves it, or None where none of ours does."""
    view = aug.apply_task(task)
    recolored = recolor_program(program, aug.colors)
    for candidate in (recolored, conjugate(recolored, aug.dihedral)) if aug.dihedral else (recolored,):
        if solves(candidate, view):
            return view, candidate
    return None


def views(task: Task, program: Program, n: int, rng: np.random.Generator) -> list[tuple[Augmentation, Task, Program]]:
    """Up to `n` distinct non-identity views (random dihedral element and colour permutation, black kept)
    that a program of ours solves and that share no grid with an evaluation set."""
    out: list[tuple[Augmentation, Task, Program]] = []
    seen: set[Any] = set()
    for _ in range(4 * n):
        if len(out) >= n:
            break
        aug = Augmentation(int(rng.integers(8)), random_colors(rng, keep_background=True))
        if aug.is_identity or aug in seen:
            continue
        seen.add(aug)
        made = program_view(task, program, aug)
        if made is None:
            continue
        view, prog = made
        grids = [g for p in view.train for g in (p.input, p.output)] + list(view.test_inputs) + list(view.test_outputs or ())
        if any(leaks(g) for g in grids):  # a recoloured or turned grid can still hit a small evaluation grid
            continue
        out.append((aug, view, prog))
    return out
