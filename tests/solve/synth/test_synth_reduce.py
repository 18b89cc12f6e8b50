"""solve.synth.reduce: rewriting with dead steps pruned, the one-call set, and reducibility, table-driven."""

from __future__ import annotations

import numpy as np
import pytest

from solve.synth.program import Program, Step
from solve.synth.reduce import fold_constants, one_call, reducible, rewrite

R = np.random.default_rng(0)
GRIDS = [np.pad(R.integers(0, 4, (4, 5)).astype(np.uint8), 1) for _ in range(4)]
for g in GRIDS:
    g[1, 1] = 3  # never symmetric under a flip: content touches the frame at one corner only


def P(*steps: tuple[str, tuple, str]) -> Program:
    return Program(tuple(Step(p, tuple(a), r) for p, a, r in steps), len(steps))


FLIP = ("flip_h", (("ref", 0),), "Grid")


def test_rewrite_drops_what_the_output_no_longer_needs():
    program = P(("least_common_color", (("ref", 0),), "Color"), ("replace_foreground", (("ref", 0), ("ref", 1)), "Grid"))
    folded = rewrite(program, {1: ("const", 3)})
    assert folded.steps == (Step("replace_foreground", (("ref", 0), ("const", 3)), "Grid"),)
    chain = P(FLIP, ("flip_v", (("ref", 1),), "Grid"), ("rot90", (("ref", 2),), "Grid"))
    assert rewrite(chain, {2: ("ref", 1)}).source().count("=") == 3  # g = ..., x1 = flip_h, x2 = rot90


def test_fold_keeps_a_query_that_varies():
    program = P(("most_common_color", (("ref", 0),), "Color"), ("replace_foreground", (("ref", 0), ("ref", 1)), "Grid"))
    traces = [program.compile()(g) for g in GRIDS]
    varies = len({int(t[1]) for t in traces}) > 1
    assert (fold_constants(program, traces) is program) == varies


@pytest.mark.parametrize("fn,name", [
    (lambda g: g[:, ::-1], "dihedral"),
    (lambda g: g[1:-1, 1:-1], "crop_to_content"),
    (lambda g: np.hstack([g, g[:, ::-1]]), "mirror_right"),
    (lambda g: g[: g.shape[0] // 2], "top_half"),
    (lambda g: np.kron(g, np.ones((2, 2), np.uint8)), "upscale2"),
    (lambda g: (g + 1) % 10, None),  # a recoloring of every cell: no call of the set
])  # fmt: skip
def test_one_call(fn, name):
    found = one_call(GRIDS, [fn(g) for g in GRIDS])
    assert (found or "").startswith(name) if name else found is None


def test_one_call_never_raises_on_degenerate_grids():
    blank = [np.zeros((1, 1), np.uint8), np.zeros((3, 3), np.uint8), np.full((2, 5), 4, np.uint8)]
    assert one_call(blank, [np.ones((2, 2), np.uint8)] * 3) is None


@pytest.mark.parametrize("steps,expected", [
    ((FLIP, ("rot180", (("ref", 1),), "Grid")), False),  # flip_h then rot180 is flip_v: two steps needed
    ((FLIP, ("recolor", (("ref", 1), 1, 7), "Grid"), ("flip_h", (("ref", 2),), "Grid")), True),  # flips cancel
    ((("recolor", (("ref", 0), ("const", 2), ("const", 7)), "Grid"), ("replace_foreground", (("ref", 1), ("const", 5)), "Grid")), True),
])  # fmt: skip
def test_reducible(steps, expected):
    steps = tuple((p, tuple(a if isinstance(a, tuple) else ("const", a) for a in args), r) for p, args, r in steps)
    program = P(*steps)
    outputs = [program.compile()(g)[-1] for g in GRIDS]
    assert reducible(program, GRIDS, outputs) == expected
