"""Geometry primitives: exact results on small grids (table-driven) and algebraic laws (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl import GridSizeError

SETTINGS = settings(max_examples=60, deadline=None)
G = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)  # no symmetry: every transform is distinguishable

CASES = [
    (d.rot90, (G,), [[3, 6], [2, 5], [1, 4]]),
    (d.rot180, (G,), [[6, 5, 4], [3, 2, 1]]),
    (d.rot270, (G,), [[4, 1], [5, 2], [6, 3]]),
    (d.flip_h, (G,), [[3, 2, 1], [6, 5, 4]]),
    (d.flip_v, (G,), [[4, 5, 6], [1, 2, 3]]),
    (d.flip_diag, (G,), [[1, 4], [2, 5], [3, 6]]),
    (d.flip_antidiag, (G,), [[6, 3], [5, 2], [4, 1]]),
    (d.transpose, (G,), [[1, 4], [2, 5], [3, 6]]),
    (d.crop, (G, 0, 1, 2, 2), [[2, 3], [5, 6]]),
    (d.pad, (G[:1, :1], 1, 7), [[7, 7, 7], [7, 1, 7], [7, 7, 7]]),
    (d.tile, (G[:1, :2], 2, 2), [[1, 2, 1, 2], [1, 2, 1, 2]]),
    (d.upscale, (G[:1, :2], 2), [[1, 1, 2, 2], [1, 1, 2, 2]]),
    (d.downscale, (np.array([[1, 1, 2, 2], [1, 1, 2, 2]], np.uint8), 2), [[1, 2]]),
    (d.hconcat, (G, G[:, :1]), [[1, 2, 3, 1], [4, 5, 6, 4]]),
    (d.vconcat, (G, G[:1]), [[1, 2, 3], [4, 5, 6], [1, 2, 3]]),
    (d.shift, (G, 1, -1, 0), [[0, 0, 0], [2, 3, 0]]),
    (d.shift, (G, 5, 0, 9), [[9, 9, 9], [9, 9, 9]]),
    (d.roll, (G, 0, 1), [[3, 1, 2], [6, 4, 5]]),
    (d.mirror_right, (G,), [[1, 2, 3, 3, 2, 1], [4, 5, 6, 6, 5, 4]]),
    (d.mirror_down, (G,), [[1, 2, 3], [4, 5, 6], [4, 5, 6], [1, 2, 3]]),
    (d.mirror_quad, (G[:1, :2],), [[1, 2, 2, 1], [1, 2, 2, 1]]),
    (d.top_half, (G,), [[1, 2, 3]]),
    (d.bottom_half, (G,), [[4, 5, 6]]),
    (d.left_half, (G,), [[1], [4]]),
    (d.right_half, (G,), [[3], [6]]),
    (d.trim_border, (np.arange(9, dtype=np.uint8).reshape(3, 3),), [[4]]),
    (d.compress, (np.array([[0, 0, 0], [0, 1, 0], [2, 2, 2]], np.uint8),), [[0, 1, 0]]),
    (d.compress, (np.array([[0, 0, 3], [0, 1, 3], [0, 0, 3]], np.uint8),), [[0], [1], [0]]),
    (d.dedupe_lines, (np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]], np.uint8),), [[1, 2], [3, 3]]),
]


@pytest.mark.parametrize("fn,args,expected", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_exact_results(fn, args, expected):
    out = fn(*args)
    assert out.dtype == np.uint8 and out.tolist() == expected


@pytest.mark.parametrize(
    "fn,args,match",
    [
        (d.tile, (np.zeros((16, 2), np.uint8), 2, 1), "32x2"),
        (d.upscale, (np.zeros((11, 11), np.uint8), 3), "33x33"),
        (d.pad, (np.zeros((29, 29), np.uint8), 1, 0), "31x31"),
        (d.hconcat, (np.zeros((2, 20), np.uint8), np.zeros((2, 11), np.uint8)), "2x31"),
        (d.mirror_down, (np.zeros((16, 3), np.uint8),), "32x3"),
        (d.top_half, (np.zeros((1, 3), np.uint8),), "0x3"),
        (d.trim_border, (np.zeros((2, 5), np.uint8),), "0x3"),
        (d.compress, (np.zeros((3, 3), np.uint8),), "0x0"),
    ],
)
def test_size_limits_raise_grid_size_error(fn, args, match):
    with pytest.raises(GridSizeError, match=match):
        fn(*args)


@pytest.mark.parametrize(
    "fn,args,match",
    [
        (d.crop, (G, 1, 1, 2, 2), "does not fit"),
        (d.downscale, (G, 2), "multiples of 2"),
        (d.hconcat, (G, G.T), "equal heights"),
        (d.vconcat, (G, G.T), "equal widths"),
        (d.pad, (G, 1, 10), "color"),
        (d.upscale, (G, 0), ">= 1"),
    ],
)
def test_bad_arguments_raise_value_error(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


@SETTINGS
@given(grids())
def test_rotations_and_flips_are_a_group(g):
    r = g
    for _ in range(4):
        r = d.rot90(r)
    assert np.array_equal(r, g)
    for flip in (d.flip_h, d.flip_v, d.flip_diag, d.flip_antidiag, d.transpose):
        assert np.array_equal(flip(flip(g)), g)
    assert np.array_equal(d.transpose(g), d.flip_diag(g))
    assert np.array_equal(d.rot180(g), d.rot90(d.rot90(g)))
    assert np.array_equal(d.rot270(g), d.rot90(d.rot180(g)))
    assert np.array_equal(d.flip_antidiag(g), d.rot180(d.flip_diag(g)))
    assert np.array_equal(d.flip_v(g), d.rot90(d.flip_diag(g)))


@SETTINGS
@given(grids(max_side=10), st.integers(1, 3))
def test_upscale_then_downscale_is_identity(g, k):
    assert np.array_equal(d.downscale(d.upscale(g, k), k), g)


@SETTINGS
@given(grids(max_side=10), st.integers(1, 3), st.integers(1, 3))
def test_tile_shape(g, rows, cols):
    out = d.tile(g, rows, cols)
    assert out.shape == (g.shape[0] * rows, g.shape[1] * cols)
    assert np.array_equal(out[: g.shape[0], : g.shape[1]], g)


@SETTINGS
@given(grids(), st.integers(-31, 31), st.integers(-31, 31))
def test_shift_then_shift_back_keeps_what_stayed_inside(g, dr, dc):
    h, w = g.shape
    back = d.shift(d.shift(g, dr, dc, 0), -dr, -dc, 0)
    # The cells that stayed on the grid during the first shift come back where they were.
    rows = slice(max(-dr, 0), max(h - max(dr, 0), 0))
    cols = slice(max(-dc, 0), max(w - max(dc, 0), 0))
    assert np.array_equal(back[rows, cols], g[rows, cols])
    assert np.array_equal(d.roll(d.roll(g, dr, dc), -dr, -dc), g)


@SETTINGS
@given(grids(max_side=15))
def test_halves_and_mirrors_fit_together(g):
    m = d.mirror_right(g)
    assert np.array_equal(d.left_half(m), g) and np.array_equal(d.right_half(m), d.flip_h(g))
    m = d.mirror_down(g)
    assert np.array_equal(d.top_half(m), g) and np.array_equal(d.bottom_half(m), d.flip_v(g))
    assert np.array_equal(d.dedupe_lines(d.dedupe_lines(g)), d.dedupe_lines(g))
