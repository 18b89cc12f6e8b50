"""Panels: a grid split into equal parts, and the parts picked, compared or combined cell by cell.

`panel` splits into rows x cols parts, with one-cell separator lines when the sides allow them and
every would-be separator line is one color (ARC draws them in one color), otherwise tiling exactly.
The others split by themselves (`split_panels`): along full lines of one color other than the
background when those cut the grid into equal panels, else into squares (a grid whose long side is a
multiple of its short side), else an even square into quadrants, else along background lines.
A panel cell is "set" when it is not the whole grid's background.
"""

from __future__ import annotations

import numpy as np

from solve.dsl.core import (
    COMBINE_OPS,
    Bool,
    Color,
    CombineOp,
    Grid,
    Index,
    Int,
    background_of,
    check_choice,
    check_color,
    check_positive,
    grid_out,
)


def _lines(n: int, parts: int, gap: int) -> list[int] | None:
    """The first index of each part along a side of n cells, or None when the parts do not fit."""
    size, rest = divmod(n - gap * (parts - 1), parts)
    if size < 1 or rest:
        return None
    return [i * (size + gap) for i in range(parts)]


def _split(grid: Grid, rows: int, cols: int) -> list[np.ndarray]:
    """The panels in reading order, as views of `grid`; ValueError when the grid does not split so."""
    rows, cols = check_positive(rows, "panel rows"), check_positive(cols, "panel cols")
    if rows * cols < 2:
        raise ValueError("a split needs at least 2 panels")
    h, w = grid.shape
    for gap in (1, 0):
        r0, c0 = _lines(h, rows, gap if rows > 1 else 0), _lines(w, cols, gap if cols > 1 else 0)
        if r0 is None or c0 is None:
            continue
        ph = (h - gap * (rows - 1)) // rows if rows > 1 else h
        pw = (w - gap * (cols - 1)) // cols if cols > 1 else w
        if gap:
            seps = [grid[r - 1, :] for r in r0[1:]] + [grid[:, c - 1] for c in c0[1:]]
            if not all((line == line[0]).all() for line in seps):
                continue
        return [grid[r : r + ph, c : c + pw] for r in r0 for c in c0]
    raise ValueError(f"a {h}x{w} grid does not split into {rows}x{cols} panels")


def _separator_runs(lines: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) runs of False in a boolean array: the stretches between separator lines."""
    out, start = [], None
    for i, sep in enumerate(lines.tolist() + [True]):
        if not sep and start is None:
            start = i
        elif sep and start is not None:
            out.append((start, i))
            start = None
    return out


def panel_colors(grid: Grid) -> Grid:
    """One cell per panel of a grid divided by full lines of one color (any thickness, any panel sizes): the panel's most common color other than the lines' color."""
    h, w = grid.shape
    best = None
    for sep in np.unique(grid).tolist():
        full_rows, full_cols = (grid == sep).all(axis=1), (grid == sep).all(axis=0)
        if not (full_rows.any() or full_cols.any()) or full_rows.all():
            continue
        row_runs, col_runs = _separator_runs(full_rows), _separator_runs(full_cols)
        if best is None or len(row_runs) * len(col_runs) > len(best[1]) * len(best[2]):
            best = (sep, row_runs, col_runs)
    if best is None:
        raise ValueError("no full row or column of one color divides the grid")
    sep, row_runs, col_runs = best
    out = np.full((len(row_runs), len(col_runs)), sep, dtype=np.uint8)
    for i, (r0, r1) in enumerate(row_runs):
        for j, (c0, c1) in enumerate(col_runs):
            counts = np.bincount(grid[r0:r1, c0:c1].ravel(), minlength=10)
            counts[sep] = 0
            if counts.any():
                out[i, j] = int(np.argmax(counts))
    return grid_out(out)


def _split_by_lines(grid: Grid, sep: int) -> list[np.ndarray] | None:
    """The panels between full rows and columns of color `sep`, if there are 2 or more of one shape."""
    full_rows, full_cols = (grid == sep).all(axis=1), (grid == sep).all(axis=0)
    if not (full_rows.any() or full_cols.any()) or full_rows.all():
        return None
    row_runs, col_runs = _separator_runs(full_rows), _separator_runs(full_cols)
    panels = [grid[r0:r1, c0:c1] for r0, r1 in row_runs for c0, c1 in col_runs]
    return panels if len(panels) >= 2 and len({p.shape for p in panels}) == 1 else None


def split_panels(grid: Grid) -> list[np.ndarray]:
    """The panels a grid splits into by itself (see the module doc), in reading order, as views."""
    h, w = grid.shape
    bg = background_of(grid)
    for sep in np.unique(grid).tolist():
        panels = None if sep == bg else _split_by_lines(grid, sep)
        if panels:
            return panels
    if h > w and h % w == 0:
        return [grid[i : i + w] for i in range(0, h, w)]
    if w > h and w % h == 0:
        return [grid[:, i : i + h] for i in range(0, w, h)]
    if h == w and h % 2 == 0:
        k = h // 2
        return [grid[:k, :k], grid[:k, k:], grid[k:, :k], grid[k:, k:]]
    # Blank rows and columns are usually gaps in a picture, so background lines come last.
    panels = _split_by_lines(grid, bg)
    if panels:
        return panels
    raise ValueError(f"a {h}x{w} grid has no separator lines, and its sides give no square panels")


def panel(grid: Grid, rows: Int, cols: Int, index: Index) -> Grid:
    """Panel number `index` (reading order) of the grid split into rows x cols panels."""
    panels = _split(grid, rows, cols)
    if not 0 <= index < len(panels):
        raise ValueError(f"panel {index} of {len(panels)}")
    return grid_out(panels[index])


def odd_panel(grid: Grid) -> Grid:
    """The one panel (split_panels) unlike all the others, by its pattern of set cells, else by its colors."""
    panels = split_panels(grid)
    bg = background_of(grid)
    for key in (lambda p: (p != bg).tobytes(), lambda p: p.tobytes()):
        keys = [key(p) for p in panels]
        unique = [p for p, k in zip(panels, keys) if keys.count(k) == 1]
        if len(unique) == 1:
            return grid_out(unique[0])
    raise ValueError("no single panel differs from the others")


def combine_panels(grid: Grid, op: CombineOp, color: Color) -> Grid:
    """Combine the set cells of the panels (split_panels) by core.COMBINE_OPS (and, or, xor = set in exactly one, nor, diff = the first only) into `color` on background."""
    check_choice(op, COMBINE_OPS, "combine op")
    color = check_color(color)
    panels = split_panels(grid)
    bg = background_of(grid)
    sets = np.stack([p != bg for p in panels])
    n = sets.sum(axis=0)
    mask = {
        "and": n == len(panels),
        "or": n > 0,
        "xor": n == 1,
        "nor": n == 0,
        "diff": sets[0] & (n == 1),
    }[op]
    return np.where(mask, np.uint8(color), np.uint8(bg)).astype(np.uint8)


def stack_panels(grid: Grid, first_on_top: Bool) -> Grid:
    """Lay the panels (split_panels) over each other: set cells cover, the first panel on top (or the last)."""
    panels = split_panels(grid)
    bg = background_of(grid)
    order = panels[::-1] if first_on_top else panels
    out = np.full(panels[0].shape, bg, dtype=np.uint8)
    for p in order:
        out = np.where(p != bg, p, out)
    return out.astype(np.uint8)
