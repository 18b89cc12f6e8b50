"""Painting: masks, lines, boxes, borders, flood fills, enclosed regions and symmetry completion.

A mask is a 0/1 uint8 grid (so it is a valid grid too). "Background" is the grid's most common
color, as everywhere in the DSL.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import Bool, Color, Direction, Grid, Index, Mask, background_of, check_color, check_direction
from solve.dsl.lines import nearest_behind
from solve.dsl.objects import Object, check_inside, component_ids


def mask_of_color(grid: Grid, color: Color) -> Mask:
    """1 where the grid has the color, else 0."""
    return (grid == check_color(color)).astype(np.uint8)


def foreground_mask(grid: Grid) -> Mask:
    """1 where the grid is not background, else 0."""
    return (grid != background_of(grid)).astype(np.uint8)


def invert_mask(mask: Mask) -> Mask:
    """Swap the 1s and 0s of a mask."""
    return (mask == 0).astype(np.uint8)


def apply_mask(grid: Grid, mask: Mask, color: Color) -> Grid:
    """Paint the cells where the mask is nonzero with one color; the mask must have the grid's shape."""
    color = check_color(color)
    if mask.shape != grid.shape:
        raise ValueError(f"mask is {mask.shape[0]}x{mask.shape[1]}, grid is {grid.shape[0]}x{grid.shape[1]}")
    out = grid.copy()
    out[mask != 0] = color
    return out


def _ray(h: int, w: int, row: int, col: int, dr: int, dc: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells from (row, col) stepping by (dr, dc) up to the border, start included."""
    steps = []
    if dr:
        steps.append(row if dr < 0 else h - 1 - row)
    if dc:
        steps.append(col if dc < 0 else w - 1 - col)
    n = min(steps) + 1
    k = np.arange(n)
    return row + dr * k, col + dc * k


def draw_line(grid: Grid, row: Index, col: Index, direction: Direction, color: Color) -> Grid:
    """Paint a straight line from (row, col) in a direction up to the border, over whatever is there."""
    color = check_color(color)
    dr, dc = check_direction(direction)
    h, w = grid.shape
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"cell ({row},{col}) is outside a {h}x{w} grid")
    out = grid.copy()
    out[_ray(h, w, int(row), int(col), dr, dc)] = color
    return out


def extend_color(grid: Grid, color: Color, direction: Direction) -> Grid:
    """From every cell of the color, shoot a line of that color in a direction across background until something else or the border."""
    color = check_color(color)
    dr, dc = check_direction(direction)
    bg = background_of(grid)
    out = grid.copy()
    # a background cell is on a ray exactly when the nearest non-background cell behind it has the colour
    out[(grid == bg) & (nearest_behind(grid, bg, dr, dc) == color)] = color
    return out


def cross_lines(grid: Grid, color: Color) -> Grid:
    """Paint the full row and column through every cell of the color, over background only."""
    color = check_color(color)
    hit = grid == color
    lines = hit.any(axis=1)[:, None] | hit.any(axis=0)[None, :]
    out = grid.copy()
    out[lines & (grid == background_of(grid))] = color
    return out


def draw_border(grid: Grid, color: Color) -> Grid:
    """Paint the outermost ring of cells with one color."""
    color = check_color(color)
    out = grid.copy()
    out[0, :] = out[-1, :] = color
    out[:, 0] = out[:, -1] = color
    return out


def box_outline(grid: Grid, obj: Object, color: Color) -> Grid:
    """Paint the outline of the object's bounding box (its outermost ring) with one color."""
    color = check_color(color)
    check_inside(grid, obj)
    top, left, h, w = obj.bbox
    out = grid.copy()
    out[top, left : left + w] = out[top + h - 1, left : left + w] = color
    out[top : top + h, left] = out[top : top + h, left + w - 1] = color
    return out


def fill_box(grid: Grid, obj: Object, color: Color) -> Grid:
    """Paint the background cells inside the object's bounding box with one color."""
    color = check_color(color)
    check_inside(grid, obj)
    top, left, h, w = obj.bbox
    out = grid.copy()
    window = out[top : top + h, left : left + w]
    window[window == background_of(grid)] = color
    return out


def halo(grid: Grid, color: Color, diagonal: Bool) -> Grid:
    """Paint background cells that touch a non-background cell (also corner to corner when diagonal)."""
    color = check_color(color)
    bg = background_of(grid)
    fg = np.pad(grid != bg, 1)
    h, w = grid.shape
    near = fg[:-2, 1:-1] | fg[2:, 1:-1] | fg[1:-1, :-2] | fg[1:-1, 2:]
    if diagonal:
        near |= fg[:-2, :-2] | fg[:-2, 2:] | fg[2:, :-2] | fg[2:, 2:]
    out = grid.copy()
    out[near & (grid == bg)] = color
    return out


def flood_fill(grid: Grid, row: Index, col: Index, color: Color) -> Grid:
    """Paint the 4-connected region of equal cells around (row, col) with one color."""
    color = check_color(color)
    h, w = grid.shape
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"cell ({row},{col}) is outside a {h}x{w} grid")
    comp = component_ids(grid, False)
    out = grid.copy()
    out[comp == comp[row, col]] = color
    return out


def fill_enclosed(grid: Grid, color: Color) -> Grid:
    """Paint background cells that cannot reach the border through 4-connected background cells."""
    color = check_color(color)
    bg = background_of(grid)
    comp = component_ids(grid, False)
    is_bg = grid == bg
    border = np.zeros_like(is_bg)
    border[0, :] = border[-1, :] = True
    border[:, 0] = border[:, -1] = True
    outside = np.isin(comp, comp[border & is_bg])
    out = grid.copy()
    out[is_bg & ~outside] = color
    return out


def complete_symmetry_h(grid: Grid) -> Grid:
    """Fill background cells from their left-right mirror cell, making the picture more symmetric."""
    bg = background_of(grid)
    mirror = grid[:, ::-1]
    out = grid.copy()
    take = (grid == bg) & (mirror != bg)
    out[take] = mirror[take]
    return out


def complete_symmetry_v(grid: Grid) -> Grid:
    """Fill background cells from their upside-down mirror cell, making the picture more symmetric."""
    bg = background_of(grid)
    mirror = grid[::-1, :]
    out = grid.copy()
    take = (grid == bg) & (mirror != bg)
    out[take] = mirror[take]
    return out


def gravity(grid: Grid, direction: Direction) -> Grid:
    """Let every non-background cell fall up, down, left or right until it rests on the edge or on another cell."""
    dr, dc = check_direction(direction)
    if dr and dc:
        raise ValueError(f"gravity needs up, down, left or right, got {direction!r}")
    bg = background_of(grid)
    # Work on columns falling down; turn the grid so that `direction` becomes down, then back.
    turns = {(1, 0): 0, (0, 1): -1, (-1, 0): 2, (0, -1): 1}[(dr, dc)]  # rot90 turns counter-clockwise
    g = np.rot90(grid, turns)
    out = np.full_like(g, bg)
    h = g.shape[0]
    for c in range(g.shape[1]):
        cells = g[:, c][g[:, c] != bg]
        if cells.size:
            out[h - cells.size :, c] = cells
    return np.ascontiguousarray(np.rot90(out, -turns))
