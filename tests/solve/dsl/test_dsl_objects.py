"""Objects, drawing and cell-by-cell combination: exact results and laws."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import grids, sparse_grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl import GridSizeError, Object

SETTINGS = settings(max_examples=80, deadline=None)

# A 1-ring with a hole, a diagonal pair of 2s, and a lone 3.
G = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 0, 1, 0, 2],
        [0, 1, 1, 1, 2, 0],
        [3, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
RING = Object(1, ((1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)), (1, 1, 3, 3))


def test_objects_4_and_8_connected():
    four = d.objects(G, False, True)
    assert [(o.color, o.size) for o in four] == [(1, 8), (2, 1), (2, 1), (3, 1)]
    assert four[0] == RING
    eight = d.objects(G, True, True)
    assert [(o.color, o.size) for o in eight] == [(1, 8), (2, 2), (3, 1)]
    assert eight[1].bbox == (2, 4, 2, 2)
    with_bg = d.objects(G, False, False)
    assert sum(o.size for o in with_bg) == G.size
    assert d.objects_of_color(G, 2, True) == (eight[1],)
    assert d.count_objects(G, False) == 4 and d.count_objects(G, True) == 3


def test_object_queries_and_selection():
    assert d.largest_object(G, False) == RING
    assert d.smallest_object(G, True).color == 3
    assert d.largest(d.objects(G, True, True)) == RING
    assert d.smallest(d.objects(G, False, True)).cells == ((2, 5),)  # first in reading order on ties
    assert (d.bbox(RING), d.object_size(RING), d.object_color(RING)) == ((1, 1, 3, 3), 8, 1)
    with pytest.raises(ValueError, match="no objects"):
        d.largest_object(np.zeros((3, 3), np.uint8), False)


GRID_CASES = [
    (d.crop_to_object, (G, RING), [[1, 1, 1], [1, 0, 1], [1, 1, 1]]),
    (d.crop_to_content, (G[:4, :4],), [[1, 1, 1], [1, 0, 1], [1, 1, 1]]),
    (d.crop_to_content, (np.array([[0, 0], [0, 4]], np.uint8),), [[4]]),
    (d.move_object, (G[:4, :4], RING, -1, 1), [[0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]]),
    (d.recolor_object, (G[:4, :4], RING, 5), [[0, 0, 0, 0], [0, 5, 5, 5], [0, 5, 0, 5], [0, 5, 5, 5]]),
    (d.delete_object, (G[:4, :4], RING), [[0] * 4] * 4),
    (d.keep_object, (G, Object(3, ((4, 0),), (4, 0, 1, 1))), [[0] * 6] * 4 + [[3, 0, 0, 0, 0, 0]]),
    (d.remove_small_objects, (G, 1, False), [[0] * 6] + [r[:4] + [0, 0] for r in G[1:4].tolist()] + [[0] * 6]),
    (d.remove_small_objects, (G, 1, True), [r[:6] for r in G[:4].tolist()] + [[0] * 6]),
    (d.recolor_largest, (G[:4, :4], 6, False), [[0, 0, 0, 0], [0, 6, 6, 6], [0, 6, 0, 6], [0, 6, 6, 6]]),
    (d.recolor_by_size, (G[2:, 3:], 1, 9, False), [[1, 0, 9], [1, 9, 0], [0, 0, 0]]),
    (d.fill_enclosed, (G[:4, :4], 4), [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 4, 1], [0, 1, 1, 1]]),
    (d.flood_fill, (G[:4, :4], 0, 0, 7), [[7, 7, 7, 7], [7, 1, 1, 1], [7, 1, 0, 1], [7, 1, 1, 1]]),
    (d.box_outline, (np.zeros((3, 4), np.uint8), Object(1, ((0, 0),), (0, 1, 3, 3)), 2), [[0, 2, 2, 2], [0, 2, 0, 2], [0, 2, 2, 2]]),
    (d.fill_box, (G[:4, :4], RING, 5), [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 5, 1], [0, 1, 1, 1]]),
    (d.draw_line, (np.zeros((3, 3), np.uint8), 1, 0, "right", 4), [[0, 0, 0], [4, 4, 4], [0, 0, 0]]),
    (d.draw_line, (np.zeros((3, 3), np.uint8), 2, 0, "up_right", 4), [[0, 0, 4], [0, 4, 0], [4, 0, 0]]),
    (d.extend_color, (np.array([[0, 0, 0], [0, 5, 0], [2, 0, 0]], np.uint8), 2, "up_right"), [[0, 0, 0], [0, 5, 0], [2, 0, 0]]),
    (d.extend_color, (np.array([[0, 0, 0], [0, 0, 0], [2, 0, 0]], np.uint8), 2, "up"), [[2, 0, 0], [2, 0, 0], [2, 0, 0]]),
    (d.cross_lines, (np.array([[0, 0, 0], [0, 3, 0], [0, 0, 1]], np.uint8), 3), [[0, 3, 0], [3, 3, 3], [0, 3, 1]]),
    (d.draw_border, (np.zeros((3, 3), np.uint8), 8), [[8, 8, 8], [8, 0, 8], [8, 8, 8]]),
    (d.halo, (np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8), 2, False), [[0, 2, 0], [2, 1, 2], [0, 2, 0]]),
    (d.halo, (np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8), 2, True), [[2, 2, 2], [2, 1, 2], [2, 2, 2]]),
    (d.complete_symmetry_h, (np.array([[1, 2, 0], [0, 0, 3]], np.uint8),), [[1, 2, 1], [3, 0, 3]]),
    (d.complete_symmetry_v, (np.array([[1, 0], [0, 0], [0, 2]], np.uint8),), [[1, 2], [0, 0], [1, 2]]),
    (d.gravity, (np.array([[1, 0], [0, 0], [0, 2]], np.uint8), "down"), [[0, 0], [0, 0], [1, 2]]),
    (d.gravity, (np.array([[1, 0, 2], [0, 0, 0]], np.uint8), "right"), [[0, 1, 2], [0, 0, 0]]),
    (d.gravity, (np.array([[0, 1, 0], [0, 0, 3]], np.uint8), "left"), [[1, 0, 0], [3, 0, 0]]),
    (d.gravity, (np.array([[0, 0], [4, 0]], np.uint8), "up"), [[4, 0], [0, 0]]),
    (d.mask_of_color, (G[:2, :3], 1), [[0, 0, 0], [0, 1, 1]]),
    (d.foreground_mask, (G[3:, :2],), [[0, 1], [1, 0]]),
    (d.invert_mask, (np.array([[0, 1]], np.uint8),), [[1, 0]]),
    (d.apply_mask, (G[:2, :3], np.array([[1, 0, 0], [0, 0, 1]], np.uint8), 9), [[9, 0, 0], [0, 1, 9]]),
    (d.overlay, (np.array([[1, 1, 0]], np.uint8), np.array([[0, 2, 0]], np.uint8)), [[1, 2, 0]]),
    (d.cell_and, (np.array([[1, 1, 0, 0]], np.uint8), np.array([[3, 0, 3, 0]], np.uint8), 5), [[5, 0, 0, 0]]),
    (d.cell_or, (np.array([[1, 1, 0, 0]], np.uint8), np.array([[3, 0, 3, 0]], np.uint8), 5), [[5, 5, 5, 0]]),
    (d.cell_xor, (np.array([[1, 1, 0, 0]], np.uint8), np.array([[3, 0, 3, 0]], np.uint8), 5), [[0, 5, 5, 0]]),
    (d.cell_nor, (np.array([[1, 1, 0, 0]], np.uint8), np.array([[3, 0, 3, 0]], np.uint8), 5), [[0, 0, 0, 5]]),
    (d.cell_diff, (np.array([[1, 1, 0, 0]], np.uint8), np.array([[3, 0, 3, 0]], np.uint8), 5), [[0, 5, 0, 0]]),
]


@pytest.mark.parametrize("fn,args,expected", GRID_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(GRID_CASES)])
def test_exact_results(fn, args, expected):
    out = fn(*args)
    assert out.dtype == np.uint8 and out.tolist() == expected


@pytest.mark.parametrize(
    "fn,args,exc",
    [
        (d.crop_to_content, (np.zeros((2, 2), np.uint8),), GridSizeError),
        (d.crop_to_object, (G[:2, :2], RING), ValueError),
        (d.draw_line, (G, 9, 0, "up", 1), ValueError),
        (d.draw_line, (G, 0, 0, "north", 1), ValueError),
        (d.gravity, (G, "up_left"), ValueError),
        (d.apply_mask, (G, np.ones((2, 2), np.uint8), 1), ValueError),
        (d.overlay, (G, G.T), ValueError),
    ],
)
def test_bad_arguments(fn, args, exc):
    with pytest.raises(exc):
        fn(*args)


def _bfs_components(g: np.ndarray, diagonal: bool) -> set[frozenset]:
    """A plain reference implementation, to check the vectorized one against."""
    h, w = g.shape
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if diagonal else [])
    seen, comps = set(), set()
    for start in np.ndindex(h, w):
        if start in seen:
            continue
        stack, comp = [start], {start}
        seen.add(start)
        while stack:
            r, c = stack.pop()
            for dr, dc in steps:
                q = (r + dr, c + dc)
                if 0 <= q[0] < h and 0 <= q[1] < w and q not in seen and g[q] == g[r, c]:
                    seen.add(q)
                    comp.add(q)
                    stack.append(q)
        comps.add(frozenset(comp))
    return comps


@SETTINGS
@given(st.one_of(sparse_grids(), grids(max_side=8, max_color=2)), st.booleans())
def test_components_partition_the_grid_and_match_a_reference(g, diagonal):
    everything = d.objects(g, diagonal, False)
    assert {frozenset(o.cells) for o in everything} == _bfs_components(g, diagonal)
    foreground = d.objects(g, diagonal, True)
    bg = d.background_color(g)
    cells = [c for o in foreground for c in o.cells]
    assert len(cells) == len(set(cells)) == int(np.count_nonzero(g != bg))
    for o in foreground:
        rows, cols = zip(*o.cells)
        assert all(g[r, c] == o.color for r, c in o.cells)
        assert o.bbox == (min(rows), min(cols), max(rows) - min(rows) + 1, max(cols) - min(cols) + 1)


@SETTINGS
@given(st.one_of(sparse_grids(), grids(max_side=10, max_color=3)), st.integers(0, 9))
def test_fill_enclosed_never_touches_cells_connected_to_the_border(g, color):
    out = d.fill_enclosed(g, color)
    bg = d.background_color(g)
    changed = out != g
    assert not (changed & (g != bg)).any()  # only background cells change
    # Every background cell in a background component that touches the border is unchanged.
    for comp in _bfs_components(g, False):
        r, c = next(iter(comp))
        if g[r, c] == bg and any(r in (0, g.shape[0] - 1) or c in (0, g.shape[1] - 1) for r, c in comp):
            assert not any(changed[q] for q in comp)


@SETTINGS
@given(st.one_of(sparse_grids(), grids()))
def test_crop_to_content_is_the_smallest_window_around_the_foreground(g):
    bg = d.background_color(g)
    if (g == bg).all():
        with pytest.raises(GridSizeError):
            d.crop_to_content(g)
        return
    once = d.crop_to_content(g)
    assert np.count_nonzero(once != bg) == np.count_nonzero(g != bg)
    fg = once != bg
    assert fg[0].any() and fg[-1].any() and fg[:, 0].any() and fg[:, -1].any()


@SETTINGS
@given(sparse_grids(), st.booleans())
def test_moving_an_object_back_and_forth(g, diagonal):
    objs = d.objects(g, diagonal, True)
    if not objs:
        return
    o = d.largest(objs)
    assert np.array_equal(d.move_object(g, o, 0, 0), g)
    assert np.array_equal(d.recolor_object(d.delete_object(g, o), o, o.color), g)
    assert np.array_equal(d.overlay(d.delete_object(g, o), d.keep_object(g, o)), g) or d.background_color(g) != 0
