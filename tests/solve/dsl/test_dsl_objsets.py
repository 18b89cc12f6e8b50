"""Object sets: multicolor parts, named filters, and painting, changing or moving a whole set."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import sparse_grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as d
from solve.dsl.core import OBJECT_FILTERS, REGIONS

SETTINGS = settings(max_examples=60, deadline=None)

# A 3x3 ring of 1s with a 2 inside it at the bottom-right corner of the hole, a 1x2 bar of 3s, a lone 4.
G = np.array(
    [
        [1, 1, 1, 0, 0, 0],
        [1, 0, 1, 0, 3, 3],
        [1, 1, 2, 0, 0, 0],
        [0, 0, 0, 0, 0, 4],
    ],
    dtype=np.uint8,
)


def test_parts_are_multicolor_components():
    ps = d.parts(G, False)
    assert [(p.color, p.size, p.bbox) for p in ps] == [(1, 8, (0, 0, 3, 3)), (3, 2, (1, 4, 1, 2)), (4, 1, (3, 5, 1, 1))]
    assert sorted(ps[0].values) == [1] * 7 + [2]
    assert len(d.parts(G, True)) == 3  # the 4 does not touch the bar, even corner to corner
    # A one-color object's values are its color repeated.
    o = d.objects(G, False, True)[0]
    assert o.values == (1,) * o.size


FILTER_CASES = [
    ("largest", [8]),
    ("smallest", [1]),
    ("unique_color", [8, 2, 1]),
    ("unique_size", [8, 2, 1]),
    ("touches_border", [8, 2, 1]),
    ("inner", []),
    ("has_hole", [8]),
    ("no_hole", [2, 1]),
    ("rectangle", [2, 1]),
    ("symmetric", [2, 1]),
    ("single_cell", [1]),
    ("multi_cell", [8, 2]),
]


@pytest.mark.parametrize("pred,sizes", FILTER_CASES)
def test_filters(pred, sizes):
    assert [o.size for o in d.select_objects(G, pred, False, True)] == sizes


def test_one_color_selection_unique_shape_and_the_first_match():
    g = np.array([[1, 0, 2, 0, 3, 3]], np.uint8)
    assert [o.color for o in d.select_objects(g, "unique_shape", False, False)] == [3]
    assert d.select_object(g, "largest", False, False).color == 3
    assert d.select_object(g, "smallest", False, False).color == 1  # the first in reading order
    assert [o.size for o in d.select_objects(G, "largest", False, False)] == [7]  # the ring without its 2
    with pytest.raises(ValueError, match="no object is has_hole"):
        d.select_object(g, "has_hole", True, False)
    with pytest.raises(ValueError, match="object filter must be one of"):
        d.select_objects(g, "biggest", False, False)


def test_keep_delete_and_map():
    ps = d.parts(G, False)
    assert d.keep_objects(G, ps[:1]).tolist() == [[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0], [1, 1, 2, 0, 0, 0], [0] * 6]
    assert d.delete_objects(G, ps[1:]).tolist() == [[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0], [1, 1, 2, 0, 0, 0], [0] * 6]
    ring = d.map_objects(G, ps[:1], "majority")
    assert ring[2, 2] == 1 and (ring[:, 3:] == G[:, 3:]).all()
    assert d.map_objects(G, ps[:1], "minority")[0, 0] == 2
    swapped = d.map_objects(G, ps[:1], "swap")
    assert swapped[2, 2] == 1 and swapped[0, 0] == 2
    assert d.map_objects(G, ps[:1], "flip_h")[2].tolist() == [2, 1, 1, 0, 0, 0]
    assert d.map_objects(G, ps[:1], "flip_v")[0].tolist() == [1, 1, 2, 0, 0, 0]
    assert d.map_objects(G, ps[:1], "rot180")[0].tolist() == [2, 1, 1, 0, 0, 0]


REGION_CASES = [
    ("cells", [[0, 0, 0], [0, 5, 5], [0, 5, 5]]),
    ("interior", [[0, 0, 0], [0, 1, 1], [0, 1, 1]]),
    ("outline", [[0, 0, 0], [0, 5, 5], [0, 5, 5]]),
    ("bbox", [[0, 0, 0], [0, 1, 1], [0, 1, 1]]),
    ("frame", [[5, 5, 5], [5, 1, 1], [5, 1, 1]]),
    ("halo", [[0, 5, 5], [5, 1, 1], [5, 1, 1]]),
    ("halo8", [[5, 5, 5], [5, 1, 1], [5, 1, 1]]),
    ("up", [[0, 5, 5], [0, 1, 1], [0, 1, 1]]),
    ("down", [[0, 0, 0], [0, 1, 1], [0, 1, 1]]),
    ("left", [[0, 0, 0], [5, 1, 1], [5, 1, 1]]),
    ("rows", [[0, 0, 0], [5, 1, 1], [5, 1, 1]]),
    ("cols", [[0, 5, 5], [0, 1, 1], [0, 1, 1]]),
    ("diagonals", [[5, 0, 0], [0, 1, 1], [0, 1, 1]]),
]


@pytest.mark.parametrize("region,expected", REGION_CASES)
def test_paint_region_of_a_2x2_square(region, expected):
    g = np.array([[0, 0, 0], [0, 1, 1], [0, 1, 1]], np.uint8)
    assert d.paint_region(g, d.objects(g, False, True), region, 5).tolist() == expected


def test_interior_and_holes_of_a_ring():
    ring = np.zeros((6, 6), np.uint8)
    ring[:4, :4] = 2
    ring[1:3, 1:3] = 0
    objs = d.objects(ring, False, True)
    assert d.paint_region(ring, objs, "holes", 4)[1:3, 1:3].tolist() == [[4, 4], [4, 4]]
    full = np.zeros((6, 6), np.uint8)
    full[:4, :4] = 2
    assert d.paint_region(full, d.objects(full, False, True), "interior", 0).tolist() == ring.tolist()


def test_slide_until_contact_and_move_toward():
    g = np.array([[2, 0, 0], [0, 0, 3], [0, 0, 0], [8, 8, 8]], np.uint8)
    moved = d.slide(g, d.objects(g, False, True)[:2], "down")
    assert moved.tolist() == [[0, 0, 0], [0, 0, 0], [2, 0, 3], [8, 8, 8]]
    with pytest.raises(ValueError):
        d.slide(g, d.objects(g, False, True), "down_left")
    h = np.array([[0, 0, 0, 0, 0], [2, 0, 0, 8, 0], [0, 0, 0, 8, 0]], np.uint8)
    assert d.move_toward(h, d.objects_of_color(h, 2, False), 8).tolist() == [[0] * 5, [0, 0, 2, 8, 0], [0, 0, 0, 8, 0]]
    v = np.array([[0, 2, 0], [0, 0, 0], [0, 0, 0], [0, 8, 0]], np.uint8)
    assert d.move_toward(v, d.objects_of_color(v, 2, False), 8)[:, 1].tolist() == [0, 0, 2, 8]


def test_recolor_by_rank():
    g = np.array([[5, 0, 5, 0, 5], [5, 0, 5, 0, 0], [5, 0, 0, 0, 0]], np.uint8)
    assert d.recolor_by_rank(g, d.objects(g, False, True)).tolist() == [[1, 0, 2, 0, 3], [1, 0, 2, 0, 0], [1, 0, 0, 0, 0]]


@SETTINGS
@given(sparse_grids(), st.booleans(), st.booleans(), st.sampled_from(OBJECT_FILTERS))
def test_selections_are_subsets_in_order_and_keep_delete_split_the_grid(g, diagonal, multicolor, pred):
    objs = d.parts(g, diagonal) if multicolor else d.objects(g, diagonal, True)
    chosen = d.select_objects(g, pred, diagonal, multicolor)
    assert list(chosen) == [o for o in objs if o in chosen]
    # Keeping a set and deleting it split the foreground between them.
    kept, rest = d.keep_objects(g, chosen), d.delete_objects(g, chosen)
    bg = d.background_color(g)
    assert np.array_equal(np.where(kept != bg, kept, rest), g)


@SETTINGS
@given(sparse_grids(), st.sampled_from(REGIONS), st.integers(0, 9))
def test_paint_region_changes_only_background_outside_the_objects(g, region, color):
    objs = d.objects(g, False, True)
    out = d.paint_region(g, objs, region, color)
    own = np.zeros(g.shape, bool)
    for o in objs:
        own[tuple(np.array(o.cells).T)] = True
    changed = out != g
    assert not (changed & ~own & (g != d.background_color(g))).any()
    if region not in ("cells", "interior", "outline"):
        assert not (changed & own).any()


@SETTINGS
@given(sparse_grids(), st.sampled_from(("up", "down", "left", "right")))
def test_slide_keeps_every_color_count_and_is_idempotent(g, direction):
    objs = d.parts(g, False)
    out = d.slide(g, objs, direction)
    assert np.array_equal(np.bincount(out.ravel(), minlength=10), np.bincount(g.ravel(), minlength=10))
    assert np.array_equal(d.slide(out, d.parts(out, False), direction), out)


def _paint_by_definition(grid, objs, region, color):
    """paint_region object by object: each object's own region (objsets._region), unioned."""
    from solve.dsl.core import background_of
    from solve.dsl.objsets import _region

    paint = np.zeros(grid.shape, dtype=bool)
    for o in objs:
        paint |= _region(grid, o, region)
    if region not in ("cells", "interior", "outline"):
        paint &= grid == background_of(grid)
    out = grid.copy()
    out[paint] = color
    return out


@settings(max_examples=400, deadline=None)
@given(sparse_grids(max_side=10), st.sampled_from(REGIONS), st.booleans(), st.booleans(), st.integers(0, 3), st.integers(1, 9))
def test_paint_region_of_the_whole_set_equals_object_by_object(g, region, diagonal, without_bg, source, color):
    """The union shortcuts (solve.dsl.objsets._union_region) against the definition, on object sets of the
    grid itself, of the grid with and without background objects, multicolour parts, and objects of
    another grid of the same shape (cells on background: the shortcut must step aside)."""
    other = np.roll(g, 1, axis=1)
    objs = (d.objects(g, diagonal, without_bg), d.parts(g, diagonal), d.objects(other, diagonal, True),
            d.objects(g, diagonal, True) + d.objects(other, diagonal, True))[source]
    assert np.array_equal(d.paint_region(g, objs, region, color), _paint_by_definition(g, objs, region, color))
