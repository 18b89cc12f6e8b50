"""Where cells go: rotations, flips, crops, padding, scaling, tiling, concatenation and shifts.

Conventions: rotations turn counter-clockwise (numpy's rot90); `flip_h` mirrors left-right (reverses
the columns), `flip_v` mirrors upside down (reverses the rows). Every function returns a new grid and
raises GridSizeError instead of producing one that is empty or larger than 30x30.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import Color, Grid, Index, Int, Offset, check_color, check_positive, check_side, grid_out


def rot90(grid: Grid) -> Grid:
    """Rotate a quarter turn counter-clockwise."""
    return grid_out(np.rot90(grid, 1))


def rot180(grid: Grid) -> Grid:
    """Rotate a half turn."""
    return grid_out(grid[::-1, ::-1])


def rot270(grid: Grid) -> Grid:
    """Rotate a quarter turn clockwise."""
    return grid_out(np.rot90(grid, 3))


def flip_h(grid: Grid) -> Grid:
    """Mirror left-right (the column order is reversed)."""
    return grid_out(grid[:, ::-1])


def flip_v(grid: Grid) -> Grid:
    """Mirror upside down (the row order is reversed)."""
    return grid_out(grid[::-1, :])


def flip_diag(grid: Grid) -> Grid:
    """Mirror across the main diagonal (top-left to bottom-right)."""
    return grid_out(grid.T)


def flip_antidiag(grid: Grid) -> Grid:
    """Mirror across the anti-diagonal (top-right to bottom-left)."""
    return grid_out(grid[::-1, ::-1].T)


transpose = flip_diag  # alias outside the registry: the same function under its other name


def crop(grid: Grid, top: Index, left: Index, height: Int, width: Int) -> Grid:
    """The height x width window whose top-left cell is (top, left); it must lie inside the grid."""
    h, w = grid.shape
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
        raise ValueError(f"crop ({top},{left}) size {height}x{width} does not fit a {h}x{w} grid")
    return grid_out(grid[top : top + height, left : left + width])


def pad(grid: Grid, n: Int, color: Color) -> Grid:
    """Surround the grid with a border n cells wide of one color."""
    n, color = check_positive(n, "pad width"), check_color(color)
    h, w = grid.shape
    check_side(h + 2 * n, w + 2 * n, "padded grid")
    out = np.full((h + 2 * n, w + 2 * n), color, dtype=np.uint8)
    out[n : n + h, n : n + w] = grid
    return out


def tile(grid: Grid, rows: Int, cols: Int) -> Grid:
    """Repeat the grid rows times downwards and cols times across."""
    rows, cols = check_positive(rows, "tile rows"), check_positive(cols, "tile cols")
    check_side(grid.shape[0] * rows, grid.shape[1] * cols, "tiled grid")
    return grid_out(np.tile(grid, (rows, cols)))


def upscale(grid: Grid, k: Int) -> Grid:
    """Blow every cell up into a k x k block."""
    k = check_positive(k, "scale factor")
    check_side(grid.shape[0] * k, grid.shape[1] * k, "upscaled grid")
    return grid_out(np.repeat(np.repeat(grid, k, axis=0), k, axis=1))


def downscale(grid: Grid, k: Int) -> Grid:
    """Shrink k x k blocks to one cell each (the block's top-left cell); sides must divide by k."""
    k = check_positive(k, "scale factor")
    h, w = grid.shape
    if h % k or w % k:
        raise ValueError(f"cannot downscale a {h}x{w} grid by {k}: sides must be multiples of {k}")
    return grid_out(grid[::k, ::k])


def hconcat(left: Grid, right: Grid) -> Grid:
    """Put two grids of equal height side by side."""
    if left.shape[0] != right.shape[0]:
        raise ValueError(f"hconcat needs equal heights, got {left.shape[0]} and {right.shape[0]}")
    check_side(left.shape[0], left.shape[1] + right.shape[1], "concatenated grid")
    return np.hstack((left, right)).astype(np.uint8, copy=False)


def vconcat(top: Grid, bottom: Grid) -> Grid:
    """Stack two grids of equal width, the first above the second."""
    if top.shape[1] != bottom.shape[1]:
        raise ValueError(f"vconcat needs equal widths, got {top.shape[1]} and {bottom.shape[1]}")
    check_side(top.shape[0] + bottom.shape[0], top.shape[1], "concatenated grid")
    return np.vstack((top, bottom)).astype(np.uint8, copy=False)


def shift(grid: Grid, dr: Offset, dc: Offset, fill: Color) -> Grid:
    """Move the whole picture dr rows down and dc columns right; cells moved in are `fill`, cells moved out are lost."""
    fill = check_color(fill)
    h, w = grid.shape
    out = np.full((h, w), fill, dtype=np.uint8)
    if abs(dr) < h and abs(dc) < w:
        out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] = grid[max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)]
    return out


def roll(grid: Grid, dr: Offset, dc: Offset) -> Grid:
    """Move the picture dr rows down and dc columns right, wrapping around the edges."""
    return grid_out(np.roll(grid, (int(dr), int(dc)), axis=(0, 1)))


def mirror_right(grid: Grid) -> Grid:
    """The grid followed by its left-right mirror image (twice as wide)."""
    return hconcat(grid, grid[:, ::-1])


def mirror_down(grid: Grid) -> Grid:
    """The grid above its upside-down mirror image (twice as tall)."""
    return vconcat(grid, grid[::-1, :])


def mirror_quad(grid: Grid) -> Grid:
    """A 2x2 kaleidoscope: the grid, its mirror to the right, and both mirrored below."""
    return mirror_down(mirror_right(grid))


def top_half(grid: Grid) -> Grid:
    """The rows above the middle (the middle row of an odd height is left out)."""
    return grid_out(grid[: grid.shape[0] // 2])


def bottom_half(grid: Grid) -> Grid:
    """The rows below the middle (the middle row of an odd height is left out)."""
    h = grid.shape[0]
    return grid_out(grid[(h + 1) // 2 :])


def left_half(grid: Grid) -> Grid:
    """The columns left of the middle (the middle column of an odd width is left out)."""
    return grid_out(grid[:, : grid.shape[1] // 2])


def right_half(grid: Grid) -> Grid:
    """The columns right of the middle (the middle column of an odd width is left out)."""
    w = grid.shape[1]
    return grid_out(grid[:, (w + 1) // 2 :])


def trim_border(grid: Grid) -> Grid:
    """Remove the outermost ring of cells."""
    return grid_out(grid[1:-1, 1:-1])


def compress(grid: Grid) -> Grid:
    """Drop every row and every column that is a single color throughout."""
    rows = (grid != grid[:, :1]).any(axis=1)
    cols = (grid != grid[:1, :]).any(axis=0)
    return grid_out(grid[rows][:, cols])


def dedupe_lines(grid: Grid) -> Grid:
    """Collapse runs of identical adjacent rows, then of identical adjacent columns, to one each."""
    keep_rows = np.ones(grid.shape[0], dtype=bool)
    keep_rows[1:] = (grid[1:] != grid[:-1]).any(axis=1)
    g = grid[keep_rows]
    keep_cols = np.ones(g.shape[1], dtype=bool)
    keep_cols[1:] = (g[:, 1:] != g[:, :-1]).any(axis=0)
    return grid_out(g[:, keep_cols])
