"""New grids from sizes, counts and patterns (not from an input grid's cells)."""

from __future__ import annotations

import numpy as np

from solve.dsl.core import Color, Grid, Int, check_color, check_positive, check_side


def canvas(color: Color, height: Int, width: Int) -> Grid:
    """A height x width grid of one color."""
    color = check_color(color)
    height, width = check_positive(height, "height"), check_positive(width, "width")
    check_side(height, width, "canvas")
    return np.full((height, width), color, dtype=np.uint8)


def blank_like(grid: Grid, color: Color) -> Grid:
    """A grid of the same shape as `grid`, all one color."""
    return np.full(grid.shape, check_color(color), dtype=np.uint8)


def bar_h(count: Int, color: Color) -> Grid:
    """A 1 x count row of one color (e.g. to show a count)."""
    return canvas(color, 1, count)


def bar_v(count: Int, color: Color) -> Grid:
    """A count x 1 column of one color (e.g. to show a count)."""
    return canvas(color, count, 1)


def checkerboard(height: Int, width: Int, a: Color, b: Color) -> Grid:
    """A height x width checkerboard of two colors, `a` in the top-left corner."""
    out = canvas(a, height, width)
    r, c = np.indices(out.shape)
    out[(r + c) % 2 == 1] = check_color(b)
    return out


def stripes_h(height: Int, width: Int, a: Color, b: Color) -> Grid:
    """Horizontal stripes one row thick, alternating `a` (top row) and `b`."""
    out = canvas(a, height, width)
    out[1::2, :] = check_color(b)
    return out


def stripes_v(height: Int, width: Int, a: Color, b: Color) -> Grid:
    """Vertical stripes one column thick, alternating `a` (left column) and `b`."""
    out = canvas(a, height, width)
    out[:, 1::2] = check_color(b)
    return out


def diagonal_grid(size: Int, color: Color, background: Color) -> Grid:
    """A size x size grid of `background` with the main diagonal in `color`."""
    out = canvas(background, size, size)
    np.fill_diagonal(out, check_color(color))
    return out
