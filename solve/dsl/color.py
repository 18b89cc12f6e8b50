"""Colors: recoloring, color queries and the background.

The background of a grid (`background_color`, core.background_of) is its most common color with
black cells counted twice, as in ARC where most grids are a field of one color with things drawn on
it and that field is usually black: a 3x3 pattern with five colored cells still has a black
background. `most_common_color` is the plain most common color.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import NUM_COLORS, Color, ColorMap, Colors, Grid, Int, background_of, check_color


def _counts(grid: Grid) -> np.ndarray:
    return np.bincount(grid.ravel(), minlength=NUM_COLORS)


def recolor(grid: Grid, a: Color, b: Color) -> Grid:
    """Paint every cell of color a with color b."""
    a, b = check_color(a), check_color(b)
    out = grid.copy()
    out[grid == a] = b
    return out


def recolor_map(grid: Grid, mapping: ColorMap) -> Grid:
    """Recolor all cells at once by a mapping {old: new}; colors not in it stay."""
    table = np.arange(NUM_COLORS, dtype=np.uint8)
    for old, new in mapping.items():
        table[check_color(old)] = check_color(new)
    return table[grid]


def swap_colors(grid: Grid, a: Color, b: Color) -> Grid:
    """Exchange two colors."""
    return recolor_map(grid, {a: b, b: a})


def replace_foreground(grid: Grid, color: Color) -> Grid:
    """Paint every cell that is not background with one color."""
    color = check_color(color)
    out = grid.copy()
    out[grid != background_of(grid)] = color
    return out


def keep_color(grid: Grid, color: Color) -> Grid:
    """Keep only the cells of one color; every other cell becomes background."""
    color = check_color(color)
    out = np.full_like(grid, background_of(grid))
    out[grid == color] = color
    return out


def remove_color(grid: Grid, color: Color) -> Grid:
    """Turn the cells of one color into background."""
    color = check_color(color)
    out = grid.copy()
    out[grid == color] = background_of(grid)
    return out


def background_color(grid: Grid) -> Color:
    """The background: the most common color, black cells counted twice (ties go to the smaller color)."""
    return background_of(grid)


def most_common_color(grid: Grid) -> Color:
    """The most common color (ties go to the smaller color)."""
    return int(np.argmax(_counts(grid)))


def least_common_color(grid: Grid) -> Color:
    """The rarest color that occurs at all (ties go to the smaller color)."""
    counts = _counts(grid)
    return int(np.argmin(np.where(counts > 0, counts, grid.size + 1)))


def most_common_foreground(grid: Grid) -> Color:
    """The most common color other than the background; the background itself if there is no other."""
    counts = _counts(grid)
    bg = background_of(grid)
    counts[bg] = 0
    return int(np.argmax(counts)) if counts.any() else bg


def colors_of(grid: Grid) -> Colors:
    """The colors that occur, in increasing order."""
    return [int(c) for c in np.flatnonzero(_counts(grid))]


def count_color(grid: Grid, color: Color) -> Int:
    """How many cells have the color (may be 0)."""
    return int(np.count_nonzero(grid == check_color(color)))


def count_colors(grid: Grid) -> Int:
    """How many different colors occur."""
    return int(np.count_nonzero(_counts(grid)))
