"""The line primitives (extend_color, extend_all, connect, connect_same) computed over whole lines at once
(solve.dsl.lines) equal their definitions written as walks along each line, cell by cell."""

from __future__ import annotations

import numpy as np
from dsl_strategies import grids, sparse_grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl.core import DIRECTIONS, LINE_MODES, background_of
from solve.dsl.lines import line_table

STEPS = {"h": ((0, 1),), "v": ((1, 0),), "diag": ((1, 1), (1, -1))}
STEPS["hv"] = STEPS["h"] + STEPS["v"]
STEPS["all"] = STEPS["hv"] + STEPS["diag"]


def walk(h, w, r, c, dr, dc):
    """Cells from (r, c) stepping by (dr, dc) to the border, start excluded."""
    r, c = r + dr, c + dc
    while 0 <= r < h and 0 <= c < w:
        yield r, c
        r, c = r + dr, c + dc


def lines(h, w, dr, dc):
    starts = [(r, c) for r in range(h) for c in range(w) if not (0 <= r - dr < h and 0 <= c - dc < w)]
    return [[(r, c), *walk(h, w, r, c, dr, dc)] for r, c in starts]


def ref_extend_color(g, color, direction):
    dr, dc = DIRECTIONS[direction]
    bg, out = background_of(g), g.copy()
    for r, c in zip(*np.nonzero(g == color)):
        for rr, cc in walk(*g.shape, r, c, dr, dc):
            if g[rr, cc] != bg:
                break
            out[rr, cc] = color
    return out


def ref_extend_all(g, direction):
    dr, dc = DIRECTIONS[direction]
    bg, out = background_of(g), g.copy()
    for r, c in zip(*np.nonzero(g != bg)):
        for rr, cc in walk(*g.shape, r, c, dr, dc):
            if g[rr, cc] != bg:
                break
            out[rr, cc] = g[r, c]
    return out


def ref_connect(g, color, fill, mode):
    bg, out = background_of(g), g.copy()
    for dr, dc in STEPS[mode]:
        for line in lines(*g.shape, dr, dc):
            at = [i for i, (r, c) in enumerate(line) if g[r, c] == color]
            for a, b in zip(at, at[1:]):
                for r, c in line[a + 1 : b]:
                    if g[r, c] == bg:
                        out[r, c] = fill
    return out


def ref_connect_same(g, mode):
    bg, out = background_of(g), g.copy()
    for dr, dc in STEPS[mode]:
        for line in lines(*g.shape, dr, dc):
            at = [i for i, (r, c) in enumerate(line) if g[r, c] != bg]
            for a, b in zip(at, at[1:]):
                if g[line[a]] == g[line[b]]:
                    for r, c in line[a + 1 : b]:
                        out[r, c] = g[line[a]]
    return out


any_grid = st.one_of(grids(max_side=14, max_color=4), sparse_grids(max_side=14))


@settings(max_examples=300, deadline=None)
@given(any_grid, st.integers(0, 9), st.sampled_from(sorted(DIRECTIONS)))
def test_extend_color_is_a_ray_from_every_cell_of_the_colour(g, color, direction):
    assert np.array_equal(d.extend_color(g, color, direction), ref_extend_color(g, color, direction))


@settings(max_examples=300, deadline=None)
@given(any_grid, st.sampled_from(sorted(DIRECTIONS)))
def test_extend_all_is_a_ray_from_every_foreground_cell(g, direction):
    assert np.array_equal(d.extend_all(g, direction), ref_extend_all(g, direction))


@settings(max_examples=300, deadline=None)
@given(any_grid, st.integers(0, 4), st.integers(0, 9), st.sampled_from(LINE_MODES))
def test_connect_fills_between_consecutive_cells_of_the_colour(g, color, fill, mode):
    assert np.array_equal(d.connect(g, color, fill, mode), ref_connect(g, color, fill, mode))


@settings(max_examples=300, deadline=None)
@given(any_grid, st.sampled_from(LINE_MODES))
def test_connect_same_fills_between_equal_neighbours_on_a_line(g, mode):
    assert np.array_equal(d.connect_same(g, mode), ref_connect_same(g, mode))


@given(st.integers(1, 30), st.integers(1, 30), st.sampled_from(sorted(DIRECTIONS.values())))
def test_the_line_table_holds_every_cell_once_in_step_order(h, w, step):
    table = line_table(h, w, *step)
    cells = table[table < h * w]
    assert sorted(cells.tolist()) == list(range(h * w))
    for row in table:
        real = row[row < h * w]
        assert (row[: real.size] == real).all()  # padding only at the end
        assert all(np.divmod(b, w) == tuple(np.add(np.divmod(a, w), step)) for a, b in zip(real, real[1:]))
