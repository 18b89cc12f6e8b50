"""Objects: connected groups of same-colored cells, and what can be done with them.

Components are found by label propagation over horizontal runs of equal cells (a 30x30 grid has
at most a few hundred runs, far fewer than cells) in numpy rather than a Python loop per cell, and
the result for a grid is memoized: generated programs ask the same question of the same grid many
times. Objects are frozen, so a memoized tuple of them cannot be changed by a caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

import numpy as np

from solve.dsl.core import Bool, Box, Color, Grid, Int, Offset, background_of, check_color, check_side, grid_out


@dataclass(frozen=True)
class Object:
    """A connected set of cells: cells are (row, col) in row-major order, bbox is (top, left, height, width).

    A one-color object (from `objects`) leaves `colors` empty; a multicolor part (from `parts`) holds
    every cell's color there, in the order of `cells`, and its most common color in `color`.
    """

    color: int
    cells: tuple[tuple[int, int], ...]
    bbox: tuple[int, int, int, int]
    colors: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return len(self.cells)

    @property
    def values(self) -> tuple[int, ...]:
        """Every cell's color, in the order of `cells`."""
        return self.colors or (self.color,) * len(self.cells)


Objects: TypeAlias = "tuple[Object, ...]"


def component_ids(grid: np.ndarray, diagonal: bool) -> np.ndarray:
    """A component id per cell (ids are not consecutive): cells connect when equal and adjacent."""
    h, w = grid.shape
    starts = np.ones((h, w), dtype=bool)
    starts[:, 1:] = grid[:, 1:] != grid[:, :-1]
    run = np.cumsum(starts.ravel()).reshape(h, w) - 1
    n_runs = int(run[-1, -1]) + 1
    # Pairs of runs that touch vertically (and diagonally when asked) with the same color.
    pairs = []
    same = grid[1:] == grid[:-1]
    pairs.append((run[:-1][same], run[1:][same]))
    if diagonal:
        same = grid[1:, 1:] == grid[:-1, :-1]
        pairs.append((run[:-1, :-1][same], run[1:, 1:][same]))
        same = grid[1:, :-1] == grid[:-1, 1:]
        pairs.append((run[:-1, 1:][same], run[1:, :-1][same]))
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    label = np.arange(n_runs)
    if a.size:
        # Min-label propagation with pointer jumping: every run takes the smallest label across its
        # links, then the label of that label. At the fixed point each component holds one label.
        while True:
            low = np.minimum(label[a], label[b])
            new = label.copy()
            np.minimum.at(new, a, low)
            np.minimum.at(new, b, low)
            new = new[new]
            if np.array_equal(new, label):
                break
            label = new
    return label[run]


@lru_cache(maxsize=4096)
def object_components(shape: tuple[int, int], data: bytes, diagonal: bool, without_bg: bool) -> tuple[Object, ...]:
    grid = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    comp = component_ids(grid, diagonal)
    flat = comp.ravel()
    order = np.argsort(flat, kind="stable")  # stable: cells of an object stay in row-major order
    _, first = np.unique(flat[order], return_index=True)
    w = shape[1]
    rows, cols = order // w, order % w
    # Per-object colors and boxes in one vectorized pass; only the cell tuples are built per object.
    colors = grid.ravel()[order[first]].tolist()
    top, bottom = np.minimum.reduceat(rows, first).tolist(), np.maximum.reduceat(rows, first).tolist()
    left, right = np.minimum.reduceat(cols, first).tolist(), np.maximum.reduceat(cols, first).tolist()
    cells = list(zip(rows.tolist(), cols.tolist()))
    ends = [*first.tolist()[1:], len(cells)]
    bg = background_of(grid) if without_bg else -1
    out = []
    for i, (start, end) in enumerate(zip(first.tolist(), ends)):
        if colors[i] != bg:
            box = (top[i], left[i], bottom[i] - top[i] + 1, right[i] - left[i] + 1)
            out.append(Object(colors[i], tuple(cells[start:end]), box))
    # Reading order of each object's first cell: the same order a person would number them.
    out.sort(key=lambda o: o.cells[0])
    return tuple(out)


def objects(grid: Grid, diagonal: Bool, without_bg: Bool) -> Objects:
    """Connected same-color components (8-connected when diagonal), in reading order; background ones left out when without_bg."""
    data = np.ascontiguousarray(grid, dtype=np.uint8).tobytes()
    return object_components(grid.shape, data, bool(diagonal), bool(without_bg))


def objects_of_color(grid: Grid, color: Color, diagonal: Bool) -> Objects:
    """The connected components of one color, in reading order."""
    color = check_color(color)
    return tuple(o for o in objects(grid, diagonal, False) if o.color == color)


def largest(objs: Objects) -> Object:
    """The object with the most cells (the first in reading order on ties)."""
    if not objs:
        raise ValueError("no objects to choose from")
    return max(objs, key=lambda o: len(o.cells))


def smallest(objs: Objects) -> Object:
    """The object with the fewest cells (the first in reading order on ties)."""
    if not objs:
        raise ValueError("no objects to choose from")
    return min(objs, key=lambda o: len(o.cells))


def largest_object(grid: Grid, diagonal: Bool) -> Object:
    """The largest non-background object."""
    return largest(objects(grid, diagonal, True))


def smallest_object(grid: Grid, diagonal: Bool) -> Object:
    """The smallest non-background object."""
    return smallest(objects(grid, diagonal, True))


def count_objects(grid: Grid, diagonal: Bool) -> Int:
    """How many non-background objects there are (may be 0)."""
    return len(objects(grid, diagonal, True))


def bbox(obj: Object) -> Box:
    """The object's bounding box as (top, left, height, width)."""
    return obj.bbox


def object_size(obj: Object) -> Int:
    """How many cells the object has."""
    return len(obj.cells)


def object_color(obj: Object) -> Color:
    """The object's color."""
    return obj.color


def _index(obj: Object) -> tuple[np.ndarray, np.ndarray]:
    cells = np.array(obj.cells, dtype=np.intp).reshape(-1, 2)
    return cells[:, 0], cells[:, 1]


def check_inside(grid: Grid, obj: Object) -> None:
    top, left, h, w = obj.bbox
    if top + h > grid.shape[0] or left + w > grid.shape[1]:
        raise ValueError(f"object with bbox {obj.bbox} does not fit a {grid.shape[0]}x{grid.shape[1]} grid")


def crop_to_object(grid: Grid, obj: Object) -> Grid:
    """The part of the grid under the object's bounding box."""
    check_inside(grid, obj)
    top, left, h, w = obj.bbox
    return grid_out(grid[top : top + h, left : left + w])


def crop_to_content(grid: Grid) -> Grid:
    """The smallest window holding every cell that is not background."""
    fg = grid != background_of(grid)
    rows = np.flatnonzero(fg.any(axis=1))
    if rows.size == 0:
        check_side(0, 0, "crop of a one-color grid")
    cols = np.flatnonzero(fg.any(axis=0))
    return grid_out(grid[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def move_object(grid: Grid, obj: Object, dr: Offset, dc: Offset) -> Grid:
    """Move the object by (dr, dc): its old cells become background, cells pushed off the grid are lost."""
    check_inside(grid, obj)
    out = grid.copy()
    rows, cols = _index(obj)
    out[rows, cols] = background_of(grid)
    rows, cols = rows + int(dr), cols + int(dc)
    keep = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    out[rows[keep], cols[keep]] = np.array(obj.values, dtype=np.uint8)[keep]
    return out


def recolor_object(grid: Grid, obj: Object, color: Color) -> Grid:
    """Paint the object's cells with one color."""
    color = check_color(color)
    check_inside(grid, obj)
    out = grid.copy()
    out[_index(obj)] = color
    return out


def delete_object(grid: Grid, obj: Object) -> Grid:
    """Turn the object's cells into background."""
    return recolor_object(grid, obj, background_of(grid))


def keep_object(grid: Grid, obj: Object) -> Grid:
    """Only the object on an empty background of the grid's size."""
    check_inside(grid, obj)
    out = np.full_like(grid, background_of(grid))
    out[_index(obj)] = obj.values
    return out


def remove_small_objects(grid: Grid, max_size: Int, diagonal: Bool) -> Grid:
    """Turn every non-background object of at most max_size cells into background (denoise)."""
    bg = background_of(grid)
    out = grid.copy()
    for o in objects(grid, diagonal, True):
        if len(o.cells) <= max_size:
            out[_index(o)] = bg
    return out


def recolor_largest(grid: Grid, color: Color, diagonal: Bool) -> Grid:
    """Paint the largest non-background object with one color."""
    return recolor_object(grid, largest_object(grid, diagonal), color)


def recolor_by_size(grid: Grid, size: Int, color: Color, diagonal: Bool) -> Grid:
    """Paint every non-background object of exactly `size` cells with one color."""
    color = check_color(color)
    out = grid.copy()
    for o in objects(grid, diagonal, True):
        if len(o.cells) == size:
            out[_index(o)] = color
    return out
