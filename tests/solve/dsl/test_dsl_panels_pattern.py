"""Panels (split, pick, combine, stack) and patterns (periodic and symmetric repair, self-tiling,
rotated quadrants, connecting, cropping to a color, denoising): exact results and laws."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import grids, sparse_grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl.panels import split_panels

SETTINGS = settings(max_examples=60, deadline=None)

# Two 2x2 panels with a separator column of 5s.
P = np.array([[1, 0, 5, 0, 0], [1, 1, 5, 1, 0]], np.uint8)


def test_panels_with_and_without_separators():
    assert d.panel(P, 1, 2, 0).tolist() == [[1, 0], [1, 1]]
    assert d.panel(P, 1, 2, 1).tolist() == [[0, 0], [1, 0]]
    four = np.arange(16, dtype=np.uint8).reshape(4, 4) % 10
    assert d.panel(four, 2, 2, 3).tolist() == [[0, 1], [4, 5]]  # no separators: quarters
    with pytest.raises(ValueError, match="does not split"):
        d.panel(np.zeros((3, 4), np.uint8), 1, 3, 0)
    with pytest.raises(ValueError):
        d.panel(P, 1, 2, 2)


@pytest.mark.parametrize(
    "op,expected",
    [
        ("and", [[0, 0], [7, 0]]),
        ("or", [[7, 0], [7, 7]]),
        ("xor", [[7, 0], [0, 7]]),
        ("nor", [[0, 7], [0, 0]]),
        ("diff", [[7, 0], [0, 7]]),
    ],
)
def test_combine_panels(op, expected):
    assert d.combine_panels(P, op, 7).tolist() == expected


def test_panels_split_by_lines_then_into_squares_then_quadrants():
    lines = np.array([[1, 5, 2, 5, 3], [5, 5, 5, 5, 5], [4, 5, 6, 5, 7]], np.uint8)
    assert [p.tolist() for p in split_panels(lines)] == [[[1]], [[2]], [[3]], [[4]], [[6]], [[7]]]
    squares = np.arange(6, dtype=np.uint8).reshape(3, 2).T  # 2x3: no lines, not a multiple: refused
    with pytest.raises(ValueError, match="no separator lines"):
        split_panels(squares)
    assert [p.shape for p in split_panels(np.arange(8, dtype=np.uint8).reshape(2, 4))] == [(2, 2), (2, 2)]
    assert len(split_panels(np.arange(16, dtype=np.uint8).reshape(4, 4) % 10)) == 4


def test_stack_and_odd_panel():
    g = np.array([[1, 0, 0, 2, 0, 3]], np.uint8)  # three 1x2 panels, no separators
    g = np.repeat(g, 2, axis=0)  # 2x6: three 2x2 squares
    assert d.stack_panels(g, True).tolist() == [[1, 2], [1, 2]]
    assert d.stack_panels(g, False).tolist() == [[1, 3], [1, 3]]
    assert d.odd_panel(g).tolist() == [[1, 0], [1, 0]]
    with pytest.raises(ValueError, match="no single panel"):
        d.odd_panel(np.zeros((2, 4), np.uint8))


def test_panel_colors_reads_panels_of_any_size_between_lines():
    g = np.array(
        [
            [2, 2, 0, 3, 3, 3],
            [2, 1, 0, 3, 3, 1],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [4, 4, 0, 0, 5, 5],
        ],
        np.uint8,
    )
    assert d.panel_colors(g).tolist() == [[2, 3], [4, 5]]
    with pytest.raises(ValueError, match="no full row or column"):
        d.panel_colors(np.array([[1, 2], [2, 1]], np.uint8))


@SETTINGS
@given(grids(max_side=12, max_color=3), st.integers(1, 3), st.integers(1, 3))
def test_panels_tile_the_grid_when_there_are_no_separators(g, rows, cols):
    try:
        panels = [d.panel(g, rows, cols, i) for i in range(rows * cols)]
    except ValueError:
        return
    ph, pw = panels[0].shape
    if ph * rows == g.shape[0] and pw * cols == g.shape[1]:
        rebuilt = np.vstack([np.hstack(panels[r * cols : (r + 1) * cols]) for r in range(rows)])
        assert np.array_equal(rebuilt, g)
    # "or" and stacking agree about where something is set
    try:
        ored = d.combine_panels(g, "or", 7)
    except ValueError:
        return
    bg = d.background_color(g)
    if bg != 7:
        assert np.array_equal(ored == 7, d.stack_panels(g, True) != bg)


def test_fill_periodic():
    truth = np.tile(np.array([[1, 2, 3], [3, 1, 2]], np.uint8), (3, 3))
    g = truth.copy()
    g[1:3, 2:6] = 0
    assert np.array_equal(d.fill_periodic(g, 0), truth)
    with pytest.raises(ValueError):
        d.fill_periodic(truth, 0)  # nothing hidden


def test_fill_symmetric_finds_an_off_center_axis():
    base = np.array([[1, 2, 3, 2, 1, 4], [5, 6, 7, 6, 5, 4]], np.uint8)  # mirror axis at column 2
    g = base.copy()
    g[0, 0] = g[1, 3] = 9
    assert np.array_equal(d.fill_symmetric(g, 9), base)
    with pytest.raises(ValueError):
        d.fill_symmetric(base, 9)


def test_self_tile_and_quadrants():
    g = np.array([[1, 0], [0, 1]], np.uint8)
    assert d.self_tile(g, 1, 0).tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert d.self_tile(g, 0, 3).tolist() == [[3, 3, 1, 0], [3, 3, 0, 1], [1, 0, 3, 3], [0, 1, 3, 3]]
    q = np.array([[1, 2], [3, 4]], np.uint8)
    assert d.rotate_quad(q).tolist() == [[1, 2, 2, 4], [3, 4, 1, 3], [4, 3, 3, 1], [2, 1, 4, 2]]
    assert d.pinwheel(q).tolist() == [[1, 2, 3, 1], [3, 4, 4, 2], [2, 4, 4, 3], [1, 3, 2, 1]]
    with pytest.raises(ValueError):
        d.rotate_quad(np.zeros((2, 3), np.uint8))
    with pytest.raises(d.GridSizeError):
        d.self_tile(np.zeros((6, 6), np.uint8), 0, 0)


def test_extend_all_stops_at_the_next_cell():
    g = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 0], [0, 3, 0]], np.uint8)
    assert d.extend_all(g, "down").tolist() == [[1, 0, 0], [1, 2, 0], [1, 2, 0], [1, 3, 0]]
    assert d.extend_all(g, "up_left").tolist() == [[1, 0, 0], [0, 2, 0], [3, 0, 0], [0, 3, 0]]


def test_connect_crop_to_color_and_denoise():
    g = np.array([[3, 0, 0, 3], [0, 0, 0, 0], [3, 0, 2, 0]], np.uint8)
    assert d.connect(g, 3, 8, "h").tolist() == [[3, 8, 8, 3], [0, 0, 0, 0], [3, 0, 2, 0]]
    assert d.connect(g, 3, 8, "v").tolist() == [[3, 0, 0, 3], [8, 0, 0, 0], [3, 0, 2, 0]]
    assert d.connect(g, 3, 3, "diag")[1, 1] == 0  # (0,3) and (2,0) are not on one diagonal
    cross = np.array([[0, 4, 0, 0], [2, 0, 0, 2], [0, 4, 0, 1]], np.uint8)
    assert d.connect_same(cross, "hv").tolist() == [[0, 4, 0, 0], [2, 4, 2, 2], [0, 4, 0, 1]]  # columns win
    assert d.connect_same(cross, "h").tolist() == [[0, 4, 0, 0], [2, 2, 2, 2], [0, 4, 0, 1]]
    assert d.crop_to_color(g, 2).tolist() == [[2]]
    assert d.crop_to_color(g, 3).shape == (3, 4)
    clean = np.zeros((5, 6), np.uint8)
    clean[:3, :3] = 1
    noisy = clean.copy()
    noisy[1, 1] = noisy[2, 3] = noisy[4, 5] = 5  # inside, beside and far from the square
    assert np.array_equal(d.denoise(noisy, 5), clean)
    corner = clean.copy()
    corner[2, 2] = 5  # touches the square on two sides and the background on two: a tie, so the square's
    assert np.array_equal(d.denoise(corner, 5), clean)


@SETTINGS
@given(sparse_grids(), st.sampled_from(("h", "v", "hv", "diag", "all")))
def test_connect_only_paints_background_and_is_idempotent(g, lines):
    out = d.connect(g, 1, 1, lines)
    bg = d.background_color(g)
    assert not ((out != g) & (g != bg)).any()
    # Along one direction the painted cells lie between the old ones, so a second pass adds nothing (with
    # two directions a new cell may pair up across the other one).
    if lines in ("h", "v") and d.background_color(out) == bg:
        assert np.array_equal(d.connect(out, 1, 1, lines), out)


def test_fill_periodic_with_rows_shifted_sideways():
    r, c = np.indices((7, 7))
    truth = np.array([2, 4, 1], np.uint8)[(r + c) % 3]
    g = np.where(r + c >= 6, truth, 0).astype(np.uint8)  # only a diagonal band known
    g[5:, :] = 0
    g[6, 0] = truth[6, 0]
    assert np.array_equal(d.fill_periodic(g, 0), truth)


@SETTINGS
@given(grids(max_side=10, max_color=4), st.integers(1, 4), st.integers(1, 4))
def test_fill_periodic_restores_a_hidden_tiling(tile_seed, rows, cols):
    tile = np.where(tile_seed[:rows, :cols] == 0, 1, tile_seed[:rows, :cols]).astype(np.uint8)
    truth = np.tile(tile, (3, 3))
    g = truth.copy()
    g[: tile.shape[0], : tile.shape[1]] = 0  # one whole period hidden: the other copies restore it
    assert np.array_equal(d.fill_periodic(g, 0), truth)
