"""Patterns: repairing periodic or symmetric pictures, self-similar tilings, rotated quadrants,
connecting same-colored cells along lines, cropping to a color and cleaning up noise.

"Unknown" cells (the color a task hides parts of the picture under) are restored from the cells the
pattern says are equal to them; a pattern that leaves a cell unexplained raises ValueError.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from solve.dsl.core import (
    LINE_MODES,
    Color,
    Direction,
    Grid,
    LineMode,
    background_of,
    check_choice,
    check_color,
    check_direction,
    check_side,
    grid_out,
)
from solve.dsl.lines import NONE, between, nearest_behind, nearest_both


def _consistent(ids: np.ndarray, colors: np.ndarray, n: int) -> bool:
    """Whether all known cells with the same class id (0..n-1) have one color."""
    lo = np.full(n, 10, dtype=np.int16)
    hi = np.full(n, -1, dtype=np.int16)
    np.minimum.at(lo, ids, colors)
    np.maximum.at(hi, ids, colors)
    return bool(((hi < 0) | (lo == hi)).all())


def _periods(known: np.ndarray, grid: np.ndarray) -> list[int]:
    """Every p (ascending) such that the known cells of a row p columns apart, or any multiple of p, agree."""
    h, w = grid.shape
    r, c = np.nonzero(known)
    colors = grid[r, c].astype(np.int16)
    out = []
    for p in range(1, w + 1):
        # Cheap necessary test first (neighbours p apart), then the exact one (whole column classes).
        a, b, ka, kb = grid[:, : w - p], grid[:, p:], known[:, : w - p], known[:, p:]
        if not (ka & kb & (a != b)).any() and _consistent(r * p + c % p, colors, h * p):
            out.append(p)
    return out


def _lattice(grid: np.ndarray, known: np.ndarray, pc: int) -> np.ndarray | None:
    """The grid filled from the smallest pattern repeating every pc columns whose rows repeat every pr
    rows shifted s columns (pr, then s, as small as the known cells allow); None if a cell stays unknown."""
    h, w = grid.shape
    rows = np.full((h, pc), -1, dtype=np.int16)  # row r's color in column class j (mod pc), -1: unknown
    r, c = np.nonzero(known)
    colors = grid[r, c].astype(np.int16)
    rows[r, c % pc] = colors
    shift = (np.arange(pc)[None, :] - np.arange(pc)[:, None]) % pc  # shift[s] = np.roll's index map by s
    for pr in range(1, h + 1):
        # rows pr apart, the upper one shifted by every s at once: which shifts no known pair contradicts
        a, b = rows[pr:][:, None, :], rows[: h - pr][:, shift]
        clash = ((a >= 0) & (b >= 0) & (a != b)).any(axis=(0, 2))
        for s in np.flatnonzero(~clash).tolist():
            q = np.arange(h) // pr
            cls = (np.arange(w)[None, :] - (q * s)[:, None]) % pc  # column class in the base row
            base = np.arange(h) % pr
            ids = base[r] * pc + cls[r, c]
            if not _consistent(ids, colors, pr * pc):
                continue
            tile = np.full(pr * pc, -1, dtype=np.int16)
            tile[ids] = colors
            full = tile[base[:, None] * pc + cls]
            return None if (full < 0).any() else full.astype(np.uint8)
    return None


def fill_periodic(grid: Grid, color: Color) -> Grid:
    """Treat cells of `color` as unknown and fill them from the smallest repeating pattern the known cells obey (rows repeat, possibly shifted sideways)."""
    color = check_color(color)
    known = grid != color
    if known.all() or not known.any():
        raise ValueError(f"fill_periodic needs some cells of color {color} and some of other colors")
    # A narrow band of known cells fits small column periods by accident: take the first that
    # explains every unknown cell.
    for pc in _periods(known, grid):
        full = _lattice(grid, known, pc)
        if full is not None:
            return full
    raise ValueError("no repeating pattern explains every unknown cell")


def _mirrors(h: int, w: int) -> list[tuple[str, int]]:
    """Every mirror axis through cell centers or between cells, as (kind, offset)."""
    out = [("v", s) for s in range(2 * h - 1)] + [("h", s) for s in range(2 * w - 1)]
    out += [("d", s) for s in range(-(h - 1), w)] + [("a", s) for s in range(h + w - 1)]
    return out


def _image(kind: str, s: int, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mirror cell of (r, c): rows r <-> s - r ("v"), columns c <-> s - c ("h"), the diagonal
    c - r = s ("d") or the anti-diagonal r + c = s ("a")."""
    if kind == "v":
        return s - r, c
    if kind == "h":
        return r, s - c
    if kind == "d":
        return c - s, r + s
    return s - c, s - r


@lru_cache(maxsize=1024)
def _mirror_pairs(h: int, w: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per mirror axis of an h x w grid (in `_mirrors` order), the flat indices of the cells it maps inside
    the grid and of their images; only axes pairing at least half the grid (`fill_symmetric` needs that
    many pairs of known cells, so the others can never count). Cached: the shape decides them."""
    r, c = np.indices((h, w))
    r, c = r.ravel(), c.ravel()
    out = []
    for kind, s in _mirrors(h, w):
        r2, c2 = _image(kind, s, r, c)
        inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        src = np.flatnonzero(inside)
        if 2 * src.size >= (h * w) // 2:
            src.setflags(write=False)
            dst = r2[inside] * w + c2[inside]
            dst.setflags(write=False)
            out.append((src, dst))
    return tuple(out)


def fill_symmetric(grid: Grid, color: Color) -> Grid:
    """Treat cells of `color` as unknown and fill them from their mirror cells, under every mirror axis (row, column or diagonal, anywhere) that the known cells obey."""
    color = check_color(color)
    h, w = grid.shape
    known = grid != color
    if known.all():
        raise ValueError(f"fill_symmetric needs some cells of color {color}")
    flat = grid.ravel()
    kflat = known.ravel()
    axes = []
    for src, dst in _mirror_pairs(h, w):
        both = kflat[src] & kflat[dst]
        # An axis counts when the known cells it pairs agree and it pairs at least half the grid.
        if 2 * int(both.sum()) >= grid.size // 2 and (flat[src][both] == flat[dst][both]).all():
            axes.append((src, dst))
    if not axes:
        raise ValueError("no mirror axis fits the known cells")
    out = flat.copy()
    known_now = kflat.copy()
    for _ in range(4):  # a few rounds: a cell may be mirrored from one filled in the round before
        for src, dst in axes:
            take = ~known_now[src] & known_now[dst]
            out[src[take]] = out[dst[take]]
            known_now[src[take]] = True
        if known_now.all():
            break
    if not known_now.all():
        raise ValueError("some unknown cells have no known mirror cell")
    return out.reshape(h, w).astype(np.uint8)


def self_tile(grid: Grid, color: Color, fill: Color) -> Grid:
    """A grid of copies of itself (h*h x w*w): the block for cell (r, c) is the grid where that cell has `color`, all `fill` elsewhere."""
    color, fill = check_color(color), check_color(fill)
    h, w = grid.shape
    check_side(h * h, w * w, "self-tiled grid")
    blocks = np.where((grid == color)[:, None, :, None], grid[None, :, None, :], np.uint8(fill))
    return grid_out(blocks.reshape(h * h, w * w))


def rotate_quad(grid: Grid) -> Grid:
    """Four copies, each turned a further quarter counter-clockwise: the grid, then rot90 to its right, rot180 below-left, rot270 below-right."""
    h, w = grid.shape
    if h != w:
        raise ValueError(f"rotate_quad needs a square grid, got {h}x{w}")
    check_side(2 * h, 2 * w, "rotated quadrants")
    top = np.hstack((grid, np.rot90(grid, 1)))
    bottom = np.hstack((np.rot90(grid, 2), np.rot90(grid, 3)))
    return grid_out(np.vstack((top, bottom)))


def pinwheel(grid: Grid) -> Grid:
    """Four copies turning clockwise around the center: the grid, rot270 to its right, rot180 below-right, rot90 below-left."""
    h, w = grid.shape
    if h != w:
        raise ValueError(f"pinwheel needs a square grid, got {h}x{w}")
    check_side(2 * h, 2 * w, "pinwheel")
    top = np.hstack((grid, np.rot90(grid, 3)))
    bottom = np.hstack((np.rot90(grid, 1), np.rot90(grid, 2)))
    return grid_out(np.vstack((top, bottom)))


def crop_to_color(grid: Grid, color: Color) -> Grid:
    """The smallest window holding every cell of the color."""
    color = check_color(color)
    hit = grid == color
    rows = np.flatnonzero(hit.any(axis=1))
    if rows.size == 0:
        raise ValueError(f"no cell has color {color}")
    cols = np.flatnonzero(hit.any(axis=0))
    return grid_out(grid[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


_LINE_STEPS = {"h": ((0, 1),), "v": ((1, 0),), "diag": ((1, 1), (1, -1))}
_LINE_STEPS["hv"] = _LINE_STEPS["h"] + _LINE_STEPS["v"]
_LINE_STEPS["all"] = _LINE_STEPS["hv"] + _LINE_STEPS["diag"]


def connect(grid: Grid, color: Color, fill: Color, lines: LineMode) -> Grid:
    """Between every two nearest cells of `color` on one line (core.LINE_MODES: rows, columns, diagonals), paint the background cells with `fill`."""
    color, fill = check_color(color), check_color(fill)
    check_choice(lines, LINE_MODES, "line mode")
    bg = background_of(grid)
    out = grid.copy()
    if color == bg:  # two nearest background cells have no background between them
        return out
    hit = grid == color
    paint = np.zeros(grid.shape, dtype=bool)
    for dr, dc in _LINE_STEPS[lines]:
        paint |= between(hit, dr, dc)
    out[paint & (grid == bg)] = fill
    return out


def extend_all(grid: Grid, direction: Direction) -> Grid:
    """Every non-background cell shoots a line of its own color in a direction across background, up to the next non-background cell or the border."""
    dr, dc = check_direction(direction)
    bg = background_of(grid)
    behind = nearest_behind(grid, bg, dr, dc)
    out = grid.copy()
    paint = (grid == bg) & (behind != NONE)
    out[paint] = behind[paint]
    return out


def connect_same(grid: Grid, lines: LineMode) -> Grid:
    """For every non-background color, paint the background cells between its two nearest cells on one line with that color (core.LINE_MODES); later lines win where they cross."""
    check_choice(lines, LINE_MODES, "line mode")
    bg = background_of(grid)
    out = grid.copy()
    for dr, dc in _LINE_STEPS[lines]:
        behind, ahead = nearest_both(grid, bg, dr, dc)
        paint = (grid == bg) & (behind == ahead) & (behind != NONE)
        out[paint] = behind[paint]
    return out


def denoise(grid: Grid, color: Color) -> Grid:
    """Replace every cell of `color` (the noise) by the most common other color among its 4 neighbours (on a tie, not the background; background when there is none)."""
    color = check_color(color)
    bg = background_of(grid)
    h, w = grid.shape
    p = np.pad(grid.astype(np.int16), 1, constant_values=-1)
    # Twice the count per color, one less for the background: a tie goes to the other color (a noise
    # cell on the corner of a rectangle, two of whose sides it touches, belongs to the rectangle).
    counts = np.zeros((10, h, w), dtype=np.int16)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = p[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
        for k in range(10):
            counts[k] += 2 * (nb == k)
    counts[bg] -= 1
    counts[color] = -9
    best = np.where(counts.max(axis=0) > 0, counts.argmax(axis=0), bg)
    out = grid.copy()
    noise = grid == color
    out[noise] = best[noise]
    return out
