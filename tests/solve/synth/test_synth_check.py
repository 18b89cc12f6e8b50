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
# Inputs whose first train input holds no 3: recoloring 3 leaves that pair as it was.
NO_3_FIRST = [np.where(INPUTS[0] == 3, 2, INPUTS[0]).astype(np.uint8), *INPUTS[1:]]
# Input 2 is input 1 with its other colors made 2: keep_color(1) gives the two of them one output.
SAME_AFTER_KEEP = [INPUTS[0], INPUTS[1], np.where(INPUTS[1] == 1, 1, np.where(INPUTS[1] == 0, 0, 2)).astype(np.uint8), INPUTS[3], INPUTS[4]]


def _two_blocks(seed: int) -> np.ndarray:
    """Two separated blocks of different sizes on black, placed by `seed`: two objects."""
    g = np.zeros((7, 8), np.uint8)
    r = seed % 3
    g[r : r + 2, 0:2] = 1
    g[4:7, 4 + seed % 3 : 7 + seed % 3] = 2
    g[6, seed % 4] = 3
    return g


FRAMED = [np.pad(g, 1) for g in INPUTS]  # a black frame: crop_to_content removes it
TWO_BLOCKS = [_two_blocks(i) for i in range(5)]
ONE_BLOCK = [np.pad(np.full((2 + i % 3, 2 + i // 3), 4, np.uint8), 1) for i in range(5)]  # one object each
# Same-shape pairs that fill the whole prompt budget: 4 train + 1 test 12x12 inputs, outputs 12x12.
LONG = [_grid(i, 12, 12) for i in range(5)]

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
    # New rules (#23.2): each fails on a program made to hit it, and only that one.
    ("pair_identity", prog(("recolor", ("ref:0", 3, 7), "Grid")), NO_3_FIRST),
    ("repeated_output", prog(("keep_color", ("ref:0", 1), "Grid")), SAME_AFTER_KEEP),
    ("one_call", prog(("rot90", ("ref:0",), "Grid"), ("crop_to_content", ("ref:1",), "Grid"), ("rot270", ("ref:2",), "Grid")), FRAMED),
    ("reducible", prog(FLIP, ("recolor", ("ref:1", 1, 7), "Grid"), ("flip_h", ("ref:2",), "Grid")), INPUTS),  # flips cancel
    # The recolor changes cells that the next step paints over anyway: dropping it changes nothing.
    ("reducible", prog(("recolor", ("ref:0", 2, 7), "Grid"), ("replace_foreground", ("ref:1", 5), "Grid")), INPUTS),
    (
        "no_objects",
        prog(("largest_object", ("ref:0", False), "Object"), ("recolor_object", ("ref:0", "ref:1", 5), "Grid"), depth=1),
        ONE_BLOCK,
    ),
    (None, prog(("largest_object", ("ref:0", False), "Object"), ("recolor_object", ("ref:0", "ref:1", 5), "Grid"), depth=1), TWO_BLOCKS),
    ("too_long", prog(("recolor", ("ref:0", 1, 7), "Grid")), LONG),
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


@pytest.mark.parametrize("keep_shape,program,reason", [
    (True, prog(FLIP), None),
    (False, prog(FLIP), "shape_class"),
    (True, prog(("top_half", ("ref:0",), "Grid")), "shape_class"),
    (False, prog(("top_half", ("ref:0",), "Grid")), None),
])  # fmt: skip
def test_shape_class_is_the_one_asked_for(keep_shape, program, reason):
    assert judge(program, INPUTS, 4, frozenset(), set(), keep_shape).reason == reason


@pytest.mark.parametrize("inputs,folded", [
    (TWO_BLOCKS, True),  # least_common_color is 3 on every input: the program writes 3
    (INPUTS, False),  # it differs between inputs: the query is what the pairs show
])  # fmt: skip
def test_a_query_with_one_value_on_every_input_becomes_a_constant(inputs, folded):
    program = prog(("least_common_color", ("ref:0",), "Color"), ("replace_foreground", ("ref:0", "ref:1"), "Grid"), depth=1)
    verdict = judge(program, inputs, 4, frozenset(), set())
    assert verdict.reason is None, verdict.reason
    source = verdict.program.source()
    assert ("least_common_color" not in source and "replace_foreground(g, 3)" in source) == folded, source
    assert ("least_common_color" in source) != folded
