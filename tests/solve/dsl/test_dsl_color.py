"""Color primitives and grid builders: exact results (table-driven) and laws."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl import GridSizeError

SETTINGS = settings(max_examples=60, deadline=None)
G = np.array([[0, 0, 1], [0, 2, 2], [0, 0, 2]], dtype=np.uint8)  # 0 x5, 2 x3, 1 x1

GRID_CASES = [
    (d.recolor, (G, 2, 7), [[0, 0, 1], [0, 7, 7], [0, 0, 7]]),
    (d.recolor_map, (G, {0: 5, 1: 2, 2: 1}), [[5, 5, 2], [5, 1, 1], [5, 5, 1]]),
    (d.swap_colors, (G, 0, 2), [[2, 2, 1], [2, 0, 0], [2, 2, 0]]),
    (d.replace_foreground, (G, 4), [[0, 0, 4], [0, 4, 4], [0, 0, 4]]),
    (d.keep_color, (G, 1), [[0, 0, 1], [0, 0, 0], [0, 0, 0]]),
    (d.remove_color, (G, 2), [[0, 0, 1], [0, 0, 0], [0, 0, 0]]),
    (d.canvas, (3, 2, 3), [[3, 3, 3], [3, 3, 3]]),
    (d.blank_like, (G[:2], 6), [[6, 6, 6], [6, 6, 6]]),
    (d.bar_h, (3, 4), [[4, 4, 4]]),
    (d.bar_v, (2, 4), [[4], [4]]),
    (d.checkerboard, (2, 3, 1, 2), [[1, 2, 1], [2, 1, 2]]),
    (d.stripes_h, (3, 2, 1, 2), [[1, 1], [2, 2], [1, 1]]),
    (d.stripes_v, (2, 3, 1, 2), [[1, 2, 1], [1, 2, 1]]),
    (d.diagonal_grid, (3, 5, 0), [[5, 0, 0], [0, 5, 0], [0, 0, 5]]),
]


@pytest.mark.parametrize("fn,args,expected", GRID_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(GRID_CASES)])
def test_grid_results(fn, args, expected):
    out = fn(*args)
    assert out.dtype == np.uint8 and out.tolist() == expected


QUERY_CASES = [
    (d.background_color, (G,), 0),
    (d.most_common_color, (G,), 0),
    (d.least_common_color, (G,), 1),
    (d.most_common_foreground, (G,), 2),
    (d.most_common_foreground, (np.zeros((2, 2), np.uint8),), 0),
    (d.colors_of, (G,), [0, 1, 2]),
    (d.count_color, (G, 2), 3),
    (d.count_color, (G, 9), 0),
    (d.count_colors, (G,), 3),
    (d.background_color, (np.array([[3, 4], [4, 3]], np.uint8),), 3),  # ties go to the smaller color
    # Black counts twice for the background: a pattern more than half drawn on keeps its black field.
    (d.background_color, (np.array([[0, 1, 1], [1, 0, 1]], np.uint8),), 0),
    (d.most_common_color, (np.array([[0, 1, 1], [1, 0, 1]], np.uint8),), 1),
    (d.background_color, (np.array([[0, 1, 1], [1, 1, 1]], np.uint8),), 1),
    (d.most_common_foreground, (np.array([[0, 1, 1], [1, 0, 1]], np.uint8),), 1),
]


@pytest.mark.parametrize("fn,args,expected", QUERY_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(QUERY_CASES)])
def test_query_results(fn, args, expected):
    out = fn(*args)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "fn,args,exc",
    [
        (d.recolor, (G, 1, 10), ValueError),
        (d.recolor, (G, True, 1), ValueError),
        (d.recolor_map, (G, {1: -1}), ValueError),
        (d.canvas, (1, 31, 1), GridSizeError),
        (d.bar_h, (0, 1), ValueError),
        (d.bar_h, (40, 1), GridSizeError),
    ],
)
def test_bad_arguments(fn, args, exc):
    with pytest.raises(exc):
        fn(*args)


@SETTINGS
@given(grids())
def test_identity_mapping_and_swaps(g):
    assert np.array_equal(d.recolor_map(g, {c: c for c in range(10)}), g)
    assert np.array_equal(d.recolor_map(g, {}), g)
    a, b = d.most_common_color(g), d.least_common_color(g)
    assert np.array_equal(d.swap_colors(d.swap_colors(g, a, b), a, b), g)
    assert d.count_colors(g) == len(d.colors_of(g))
    assert sum(d.count_color(g, c) for c in d.colors_of(g)) == g.size


@SETTINGS
@given(grids(), st.integers(0, 9), st.integers(0, 9))
def test_recolor_moves_all_cells_of_a_color(g, a, b):
    out = d.recolor(g, a, b)
    if a != b:
        assert d.count_color(out, a) == 0
    assert d.count_color(out, b) == d.count_color(g, b) + (d.count_color(g, a) if a != b else 0)


@pytest.mark.parametrize(
    "raw,ok",
    [
        ([[1, 2], [3, 4]], True),
        (np.array([[9]], dtype=np.int64), True),
        ([[1, 2], [3]], False),
        ([[10]], False),
        ([[-1]], False),
        ([[True]], False),
        ([], False),
        ([[0] * 31], False),
        ([1, 2, 3], False),
    ],
)
def test_to_array(raw, ok):
    if ok:
        out = d.to_array(raw)
        assert out.dtype == np.uint8 and out.tolist() == np.asarray(raw).tolist()
        if isinstance(raw, np.ndarray):
            assert not np.shares_memory(out, raw)
    else:
        with pytest.raises(ValueError):
            d.to_array(raw)
