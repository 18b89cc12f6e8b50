"""Each reject reason of the judge, on hand-made programs and inputs (table-driven)."""

from __future__ import annotations

import numpy as np
import pytest

from augment.contamination import grid_key
from solve.synth.check import REASONS, behaviour_key, judge
from solve.synth.program import Program, Step


def _grid(seed: int, h: int = 5, w: int = 6, colors=(1, 2, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.zeros((h, w), np.uint8)
    on = rng.random((h, w)) < 0.4
    g[on] = rng.choice(colors, size=int(on.sum()))
    g[0, 0], g[-1, -1] = colors[0], 0  # never symmetric under a flip
    return g


def prog(*steps: tuple, depth: int | None = None) -> Program:
    """Steps as (prim, args, returns) with args written 'ref:i' or a constant."""
    built = []
    for prim, args, returns in steps:
        parsed = tuple(("ref", int(a[4:])) if isinstance(a, str) and a.startswith("ref:") else ("const", a) for a in args)
        built.append(Step(prim, parsed, returns))
    return Program(tuple(built), depth if depth is not None else len(built))


INPUTS = [_grid(i) for i in range(5)]  # 4 train + 1 test
MIXED = [_grid(i, 4 + i, 5 + i) for i in range(5)]  # different shapes
WITH_5 = [np.where(g == 1, 5, g).astype(np.uint8) for g in INPUTS[:4]] + [INPUTS[4]]  # only train inputs hold 5
BIG = [_grid(i, 11, 11) for i in range(5)]
FLIP = ("flip_h", ("ref:0",), "Grid")

CASES = [
    ("error", prog(("crop", ("ref:0", 0, 0, 9, 9), "Grid")), INPUTS),
    ("bad_size", prog(("upscale", ("ref:0", 3), "Grid")), BIG),
    ("identity", prog(("recolor", ("ref:0", 9, 4), "Grid")), INPUTS),
    ("test_identity", prog(("recolor", ("ref:0", 5, 6), "Grid")), WITH_5),
    ("constant", prog(("canvas", (3, 2, 2), "Grid")), INPUTS),
    ("blank", prog(("keep_color", ("ref:0", 9), "Grid")), MIXED),
    ("noop_step", prog(FLIP, ("remove_color", ("ref:1", 9), "Grid")), INPUTS),
    ("dihedral", prog(FLIP, ("flip_v", ("ref:1",), "Grid")), INPUTS),
    (None, prog(FLIP, ("flip_v", ("ref:1",), "Grid"), depth=1), INPUTS),  # a plain rotation is a fine depth-1 task
    (None, prog(("largest_object", ("ref:0", True), "Object"), ("crop_to_object", ("ref:0", "ref:1"), "Grid"), depth=1), INPUTS),
]


@pytest.mark.parametrize("reason,program,inputs", CASES, ids=[c[0] or f"accepted-{i}" for i, c in enumerate(CASES)])
def test_reasons(reason, program, inputs):
    assert reason is None or reason in REASONS
    verdict = judge(program, inputs, 4, frozenset(), set())
    assert verdict.reason == reason, program.source()
    if reason is None:
        assert len(verdict.outputs) == len(inputs) and verdict.key == behaviour_key(inputs, list(verdict.outputs))


def test_contaminated_output_and_duplicate_behaviour():
    program = prog(FLIP)
    accepted = judge(program, INPUTS, 4, frozenset(), set())
    assert accepted.reason is None
    leaked = frozenset({grid_key(accepted.outputs[2])})
    assert judge(program, INPUTS, 4, leaked, set()).reason == "contaminated"
    assert judge(program, INPUTS, 4, frozenset(), {accepted.key}).reason == "duplicate"
    # Same behaviour on the same inputs in another order is still a duplicate; other inputs are not.
    assert judge(program, INPUTS[::-1], 4, frozenset(), {accepted.key}).reason == "duplicate"
    assert judge(program, MIXED, 4, frozenset(), {accepted.key}).reason is None
