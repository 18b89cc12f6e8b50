"""Cell-by-cell combinations of two grids of the same shape (e.g. the two halves of a split input).

Here a cell is "set" when it is not 0: in ARC puzzles that overlay or compare two panels, 0 (black)
is the empty cell, whatever the most common color of each panel happens to be.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import Color, Grid, check_color


def _same_shape(a: Grid, b: Grid) -> None:
    if a.shape != b.shape:
        raise ValueError(f"grids differ in shape: {a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]}")


def _paint(mask: np.ndarray, color: Color) -> Grid:
    return np.where(mask, np.uint8(check_color(color)), np.uint8(0)).astype(np.uint8)


def overlay(base: Grid, top: Grid) -> Grid:
    """`top` drawn over `base`: top's nonzero cells win, elsewhere base shows through."""
    _same_shape(base, top)
    return np.where(top != 0, top, base).astype(np.uint8)


def cell_and(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where both grids are nonzero, 0 elsewhere."""
    _same_shape(a, b)
    return _paint((a != 0) & (b != 0), color)


def cell_or(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where either grid is nonzero, 0 elsewhere."""
    _same_shape(a, b)
    return _paint((a != 0) | (b != 0), color)


def cell_xor(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where exactly one grid is nonzero, 0 elsewhere."""
    _same_shape(a, b)
    return _paint((a != 0) ^ (b != 0), color)


def cell_nor(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where both grids are 0, 0 elsewhere."""
    _same_shape(a, b)
    return _paint((a == 0) & (b == 0), color)


def cell_diff(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where `a` is nonzero and `b` is 0, 0 elsewhere."""
    _same_shape(a, b)
    return _paint((a != 0) & (b == 0), color)
