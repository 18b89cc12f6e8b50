"""The DSL program search: finds programs of known tasks, emits source that computes what it found,
keeps one program per behaviour, honours its deadline and reports near misses."""

from __future__ import annotations

import time

import numpy as np
import pytest

import solve.dsl as dsl
from solve.dsl import registry as reg
from solve.dsl_search.calls import build_calls, pair_color_map, size_constants
from solve.dsl_search.search import search


def grids(seed: int, n: int, shape=(5, 6), colors=(0, 1, 2, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = rng.choice(colors, size=shape, p=[0.55] + [0.45 / (len(colors) - 1)] * (len(colors) - 1)).astype(np.uint8)
        out.append(g)
    return out


def task_of(fn, seed: int = 0, shape=(5, 6), n_train: int = 3):
    xs = grids(seed, n_train + 1, shape)
    return [(x, fn(x)) for x in xs[:n_train]], [xs[-1]], fn(xs[-1])


def run_source(source: str, grid: np.ndarray) -> np.ndarray:
    scope: dict = {}
    exec(compile(source, "<search>", "exec"), scope)  # our own search's output over our own DSL
    return np.asarray(scope["transform"](grid.tolist()), dtype=np.uint8)


# (name, the rule, depth needed)
RULES = [
    ("flip", lambda g: dsl.flip_h(g), 1),
    ("recolor", lambda g: dsl.recolor(g, 3, 5), 1),
    ("color map", lambda g: dsl.recolor_map(g, {1: 7, 2: 8}), 1),
    ("tile", lambda g: dsl.tile(g, 2, 2), 1),
    ("mirror then upscale", lambda g: dsl.upscale(dsl.mirror_right(g), 2), 2),
    ("rotate then recolor", lambda g: dsl.recolor(dsl.rot90(g), 1, 4), 2),
    ("concat with its flip", lambda g: dsl.hconcat(g, dsl.flip_h(g)), 2),
]


@pytest.mark.parametrize("name,rule,depth", RULES, ids=[r[0] for r in RULES])
def test_finds_a_program_that_solves_the_task(name, rule, depth):
    train, test_inputs, truth = task_of(rule, seed=len(name))
    res = search(train, test_inputs, depth=depth, seconds=60, max_solutions=1)
    assert res.solutions, f"{name}: nothing found ({res.stats})"
    best = res.solutions[0]
    assert best.depth <= depth
    # The emitted source, run as a program, computes exactly what the search evaluated.
    for (x, y), out in zip(train, best.train_outputs):
        assert np.array_equal(run_source(best.source, x), y) and np.array_equal(out, y)
    assert np.array_equal(run_source(best.source, test_inputs[0]), best.test_outputs[0])
    assert np.array_equal(best.test_outputs[0], truth)


def test_depth_one_does_not_find_two_call_rules():
    train, test_inputs, _ = task_of(lambda g: dsl.upscale(dsl.mirror_right(g), 2), seed=3)
    assert search(train, test_inputs, depth=1, seconds=60).solutions == []


def test_two_halves_combined_cell_by_cell():
    def rule(g):
        return dsl.cell_and(dsl.left_half(g), dsl.right_half(g), 6)

    train, test_inputs, truth = task_of(rule, seed=5, shape=(4, 8))
    res = search(train, test_inputs, depth=2, seconds=60, max_solutions=1)
    assert any(np.array_equal(f.test_outputs[0], truth) for f in res.solutions)
    src = res.solutions[0].source
    assert np.array_equal(run_source(src, test_inputs[0]), res.solutions[0].test_outputs[0])


def test_solutions_are_distinct_behaviours_and_shortest_first():
    train, test_inputs, _ = task_of(lambda g: dsl.flip_h(g), seed=1)
    res = search(train, test_inputs, depth=1, seconds=60, max_solutions=5)
    keys = [tuple(o.tobytes() for o in f.test_outputs) for f in res.solutions]
    assert len(keys) == len(set(keys))
    assert res.solutions[0].depth == 1
    assert res.stats["distinct"] < res.stats["evaluated"]


def test_deadline_is_honoured():
    train, test_inputs, _ = task_of(lambda g: dsl.recolor(dsl.rot90(dsl.tile(g, 1, 2)), 1, 9), seed=2)
    t0 = time.monotonic()
    res = search(train, test_inputs, depth=3, seconds=0.5)
    assert time.monotonic() - t0 < 3.0
    assert res.stats["stopped_by"] in ("deadline", "solutions")


def test_near_misses_have_the_right_shape_and_are_best_first():
    # No single call does this: flip only the first row.
    def rule(g):
        out = g.copy()
        out[0] = out[0, ::-1]
        return out

    train, test_inputs, _ = task_of(rule, seed=4)
    res = search(train, test_inputs, depth=1, seconds=60, near_misses=3)
    assert not res.solutions and len(res.near_misses) == 3
    cells = [f.train_cells for f in res.near_misses]
    assert cells == sorted(cells, reverse=True) and cells[0] > 0.7
    assert all(o.shape == y.shape for f in res.near_misses for o, (_, y) in zip(f.train_outputs, train))


def test_bad_arguments_are_refused():
    train, test_inputs, _ = task_of(lambda g: g, seed=0)
    with pytest.raises(ValueError, match="depth"):
        search(train, test_inputs, depth=0)
    with pytest.raises(ValueError, match="train pair"):
        search([], test_inputs)


def test_constants_come_from_the_task():
    x, y = np.zeros((3, 4), np.uint8), np.zeros((6, 12), np.uint8)
    assert {2, 3}.issubset(size_constants([(x, y)]))
    a = np.array([[1, 2], [2, 0]], np.uint8)
    assert pair_color_map([(a, np.array([[5, 2], [2, 0]], np.uint8))]) == {1: 5}
    assert pair_color_map([(a, np.array([[5, 2], [3, 0]], np.uint8))]) is None  # 2 -> 2 and 2 -> 3
    assert pair_color_map([(a, a)]) is None  # nothing changes


def test_every_grid_primitive_is_searched_or_says_why():
    train, test_inputs, _ = task_of(lambda g: g, seed=0)
    table = build_calls(train, test_inputs)
    searched = {c.prim for c in table.calls} | set(table.fitted) | set(table.skipped)
    grid_prims = {p.name for p in reg.returning(reg.GRID)}
    assert grid_prims - searched <= {"transpose"}  # an alias of flip_diag
    assert all(table.skipped.values())
