"""Cell-by-cell combinations of two grids of the same shape (e.g. the two halves of a split input).

A cell is "set" when it is not the background, and the background of a pair is that of both grids
together (core.background_of: the most common color, black counted twice): one panel of a split input
may be mostly colored, but the picture it came from is mostly background. The results are `color` on
that background.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import Color, Grid, background_of, check_color


def _background(a: Grid, b: Grid) -> int:
    """The background of both grids together, which must have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"grids differ in shape: {a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]}")
    return background_of(np.concatenate((a.ravel(), b.ravel()))[None, :])


def _paint(mask: np.ndarray, color: Color, bg: int) -> Grid:
    return np.where(mask, np.uint8(check_color(color)), np.uint8(bg)).astype(np.uint8)


def overlay(base: Grid, top: Grid) -> Grid:
    """`top` drawn over `base`: top's set cells win, elsewhere base shows through."""
    bg = _background(base, top)
    return np.where(top != bg, top, base).astype(np.uint8)


def cell_and(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where both grids are set, background elsewhere."""
    bg = _background(a, b)
    return _paint((a != bg) & (b != bg), color, bg)


def cell_or(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where either grid is set, background elsewhere."""
    bg = _background(a, b)
    return _paint((a != bg) | (b != bg), color, bg)


def cell_xor(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where exactly one grid is set, background elsewhere."""
    bg = _background(a, b)
    return _paint((a != bg) ^ (b != bg), color, bg)


def cell_nor(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where neither grid is set, background elsewhere."""
    bg = _background(a, b)
    return _paint((a == bg) & (b == bg), color, bg)


def cell_diff(a: Grid, b: Grid, color: Color) -> Grid:
    """`color` where `a` is set and `b` is not, background elsewhere."""
    bg = _background(a, b)
    return _paint((a != bg) & (b == bg), color, bg)
