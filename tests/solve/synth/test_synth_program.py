"""Random typed programs: their source reads as one DSL call per line and computes what the fast
evaluator computes; generation is deterministic per generator state."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from solve.synth.check import load_transform
from solve.synth.inputs import STYLES, arc_inputs, arc_pool, generated_inputs
from solve.synth.program import MAX_DEPTH, Program, Step, random_program


def _programs(seed: int, count: int) -> list[Program]:
    rng = np.random.default_rng(seed)
    return [random_program(rng, (0, 1, 2, 5)) for _ in range(count)]


def test_same_generator_state_same_programs():
    assert [p.source() for p in _programs(7, 50)] == [p.source() for p in _programs(7, 50)]
    assert [p.source() for p in _programs(7, 50)] != [p.source() for p in _programs(8, 50)]


@pytest.mark.parametrize("depth", range(1, MAX_DEPTH + 1))
def test_requested_depth_is_the_depth(depth):
    rng = np.random.default_rng(depth)
    assert all(random_program(rng, (0, 3), depth).depth == depth for _ in range(40))


def test_source_is_one_call_per_line_and_matches_the_fast_path():
    rng = np.random.default_rng(0)
    _, inputs = generated_inputs(rng, 6)
    compared = 0
    for p in _programs(1, 300):
        src = p.source()
        lines = src.splitlines()
        assert lines[:5] == ["from solve.dsl import *", "", "", "def transform(grid):", "    g = to_array(grid)"]
        body = lines[5:-1]
        assert len(body) == len(p.steps) and lines[-1].startswith("    return ")
        for line in body:
            stmt = ast.parse(line.strip()).body[0]
            assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
            assert not any(isinstance(n, ast.Call) for n in ast.walk(stmt.value) if n is not stmt.value)
        transform, run = load_transform(src), p.compile()
        for g in inputs:
            try:
                fast = run(g)[-1]
            except ValueError:
                continue
            assert np.array_equal(transform(g.tolist()), fast), src
            compared += 1
    assert compared > 500


def test_primitives_and_depth_of_a_hand_written_program():
    p = Program(
        (
            Step("largest_object", (("ref", 0), ("const", True)), "Object"),
            Step("crop_to_object", (("ref", 0), ("ref", 1)), "Grid"),
            Step("flip_h", (("ref", 2),), "Grid"),
        ),
        depth=2,
    )
    assert p.primitives == ["crop_to_object", "flip_h", "largest_object"]
    assert "    obj1 = largest_object(g, True)\n    x1 = crop_to_object(g, obj1)\n    x2 = flip_h(x1)\n    return x2\n" in p.source()
    g = np.array([[0, 0, 0], [0, 1, 1], [0, 0, 1]], np.uint8)
    assert p.compile()(g)[-1].tolist() == [[1, 1], [1, 0]]


def test_generated_inputs_are_distinct_valid_and_avoid_excluded_grids():
    rng = np.random.default_rng(3)
    styles = set()
    for _ in range(60):
        style, grids = generated_inputs(rng, 5)
        styles.add(style)
        assert len({g.tobytes() + bytes(g.shape) for g in grids}) == len(grids) == 5
        for g in grids:
            assert g.dtype == np.uint8 and g.ndim == 2 and 1 <= min(g.shape) and max(g.shape) <= 30 and g.max() <= 9
    assert styles == set(STYLES)
    # Excluding every 3x3 grid of one color: none comes back.
    exclude = frozenset(bytes((h, w)) + bytes([c]) * (h * w) for h in range(1, 31) for w in range(1, 31) for c in range(10))
    for _ in range(30):
        _, grids = generated_inputs(rng, 5, exclude)
        assert all(len(np.unique(g)) > 1 for g in grids)


def test_arc_inputs_come_from_the_pool(sources):
    pool = list(sources.pools[0])
    from solve.synth.corpus import MAX_ARC_SIDE

    assert pool == arc_pool(sources.arc_tasks[0], MAX_ARC_SIDE) and all(max(g.shape) <= MAX_ARC_SIDE for g in pool)
    picked = arc_inputs(np.random.default_rng(0), pool, 4)
    assert len(picked) == min(4, len(pool)) and all(any(g is p for p in pool) for g in picked)
