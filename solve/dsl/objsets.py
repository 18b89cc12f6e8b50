"""Sets of objects: multicolor parts, filtering by a named property, and painting, moving or changing
every object of a set in one call.

The higher-order operations take a name from a short fixed list (core.OBJECT_FILTERS, core.REGIONS,
core.OBJECT_ACTIONS) instead of a Python callable, so a program search can enumerate them like colors.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from solve.dsl.core import (
    OBJECT_ACTIONS,
    OBJECT_FILTERS,
    REGIONS,
    Bool,
    Color,
    Direction,
    Grid,
    ObjectAction,
    ObjectFilter,
    Region,
    background_of,
    check_choice,
    check_color,
    check_direction,
)
from solve.dsl.objects import Object, Objects, check_inside, component_ids, object_components


def _cells(obj: Object) -> tuple[np.ndarray, np.ndarray]:
    cells = np.array(obj.cells, dtype=np.intp).reshape(-1, 2)
    return cells[:, 0], cells[:, 1]


def _check_all_inside(grid: Grid, objs: Objects) -> None:
    for o in objs:
        check_inside(grid, o)


def parts(grid: Grid, diagonal: Bool) -> Objects:
    """Connected groups of non-background cells of any colors (multicolor objects), in reading order."""
    bg = background_of(grid)
    fg = (grid != bg).astype(np.uint8)
    comps = {o.cells: o for o in object_components(fg.shape, fg.tobytes(), bool(diagonal), False) if o.color == 1}
    out = []
    for o in comps.values():
        values = tuple(int(grid[r, c]) for r, c in o.cells)
        # The part's color is its most common one (ties to the smaller color), its `colors` every cell's.
        color = min(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out.append(Object(color, o.cells, o.bbox, values))
    out.sort(key=lambda o: o.cells[0])
    return tuple(out)


def _shape(o: Object) -> tuple:
    top, left = o.bbox[0], o.bbox[1]
    return tuple((r - top, c - left, v) for (r, c), v in zip(o.cells, o.values))


def _has_hole(o: Object) -> bool:
    """True when some cell of the bounding box is cut off from outside the box by the object's cells."""
    top, left, h, w = o.bbox
    box = np.zeros((h + 2, w + 2), dtype=np.uint8)
    rows, cols = _cells(o)
    box[rows - top + 1, cols - left + 1] = 1
    comp = component_ids(box, False)
    outside = comp[0, 0]
    return bool(((box == 0) & (comp != outside)).any())


def _holes(o: Object) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the bounding box that are not the object's and cannot reach outside it (4-connected)."""
    top, left, h, w = o.bbox
    box = np.zeros((h + 2, w + 2), dtype=np.uint8)
    rows, cols = _cells(o)
    box[rows - top + 1, cols - left + 1] = 1
    comp = component_ids(box, False)
    r, c = np.nonzero((box == 0) & (comp != comp[0, 0]))
    return r + top - 1, c + left - 1


def _keep_mask(grid: Grid, objs: Objects, pred: str) -> list[bool]:
    """Which objects satisfy the named filter (some filters compare an object with the others)."""
    h, w = grid.shape
    sizes = [o.size for o in objs]
    if pred == "largest":
        return [s == max(sizes) for s in sizes]
    if pred == "smallest":
        return [s == min(sizes) for s in sizes]
    if pred in ("unique_color", "unique_shape", "unique_size"):
        if pred == "unique_color":
            keys = [frozenset(o.values) for o in objs]
        elif pred == "unique_shape":
            keys = [frozenset((r, c) for r, c, _ in _shape(o)) for o in objs]
        else:
            keys = sizes
        counts = Counter(keys)
        return [counts[k] == 1 for k in keys]
    out = []
    for o in objs:
        top, left, bh, bw = o.bbox
        border = top == 0 or left == 0 or top + bh == h or left + bw == w
        if pred == "touches_border":
            out.append(border)
        elif pred == "inner":
            out.append(not border)
        elif pred == "has_hole":
            out.append(_has_hole(o))
        elif pred == "no_hole":
            out.append(not _has_hole(o))
        elif pred == "rectangle":
            out.append(o.size == bh * bw)
        elif pred == "symmetric":
            shape = _shape(o)
            out.append(set(shape) == {(r, bw - 1 - c, v) for r, c, v in shape})
        elif pred == "single_cell":
            out.append(o.size == 1)
        else:  # multi_cell
            out.append(o.size > 1)
    return out


def _candidates(grid: Grid, diagonal: bool, multicolor: bool) -> Objects:
    if multicolor:
        return parts(grid, diagonal)
    return object_components(grid.shape, np.ascontiguousarray(grid, dtype=np.uint8).tobytes(), bool(diagonal), True)


def select_objects(grid: Grid, pred: ObjectFilter, diagonal: Bool, multicolor: Bool) -> Objects:
    """The non-background objects (one-color, or multicolor parts) that have the named property (core.OBJECT_FILTERS), in reading order."""
    check_choice(pred, OBJECT_FILTERS, "object filter")
    objs = _candidates(grid, diagonal, multicolor)
    if not objs:
        return ()
    return tuple(o for o, keep in zip(objs, _keep_mask(grid, objs, pred)) if keep)


def select_object(grid: Grid, pred: ObjectFilter, diagonal: Bool, multicolor: Bool) -> Object:
    """The first non-background object (one-color, or a multicolor part) in reading order with the named property; ValueError if none has it."""
    chosen = select_objects(grid, pred, diagonal, multicolor)
    if not chosen:
        raise ValueError(f"no object is {pred}")
    return chosen[0]


def keep_objects(grid: Grid, objs: Objects) -> Grid:
    """Only the set's objects, on a background-colored grid of the same shape."""
    _check_all_inside(grid, objs)
    out = np.full_like(grid, background_of(grid))
    for o in objs:
        out[_cells(o)] = o.values
    return out


def delete_objects(grid: Grid, objs: Objects) -> Grid:
    """Turn every cell of the set's objects into background."""
    _check_all_inside(grid, objs)
    out = grid.copy()
    bg = background_of(grid)
    for o in objs:
        out[_cells(o)] = bg
    return out


def _swept(own: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Cells with some True cell of `own` behind them in a straight direction, those cells included."""
    if dr:
        return np.logical_or.accumulate(own[::dr], axis=0)[::dr]
    return np.logical_or.accumulate(own[:, ::dc], axis=1)[:, ::dc]


def _near(own: np.ndarray, eight: bool) -> np.ndarray:
    """Cells with a 4-neighbour (8-neighbour when `eight`) in `own`."""
    p = np.pad(own, 1)
    near = p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    if eight:
        near |= p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:]
    return near


def _ray_cells(grid: Grid, o: Object, dr: int, dc: int) -> np.ndarray:
    """A mask of the cells strictly beyond the object in a straight direction, up to the border."""
    mask = np.zeros(grid.shape, dtype=bool)
    mask[_cells(o)] = True
    return _swept(mask, dr, dc) & ~mask


def _region(grid: Grid, o: Object, region: str) -> np.ndarray:
    """A boolean mask of the region of one object (see core.REGIONS)."""
    h, w = grid.shape
    top, left, bh, bw = o.bbox
    mask = np.zeros((h, w), dtype=bool)
    rows, cols = _cells(o)
    own = np.zeros((h, w), dtype=bool)
    own[rows, cols] = True
    if region == "cells":
        return own
    if region in ("interior", "outline"):
        p = np.pad(own, 1)
        inner = own & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        return inner if region == "interior" else own & ~inner
    if region == "holes":
        mask[_holes(o)] = True
        return mask
    if region == "bbox":
        mask[top : top + bh, left : left + bw] = True
        return mask & ~own
    if region == "frame":
        t, lf = max(top - 1, 0), max(left - 1, 0)
        mask[t : top + bh + 1, lf : left + bw + 1] = True
        mask[top : top + bh, left : left + bw] = False
        return mask
    if region in ("halo", "halo8"):
        return _near(own, region == "halo8") & ~own
    if region in ("up", "down", "left", "right"):
        return _ray_cells(grid, o, *check_direction(region))
    if region == "diagonals":  # rays outward from the four corners of the bounding box
        for r0, c0, dr, dc in (
            (top, left, -1, -1),
            (top, left + bw - 1, -1, 1),
            (top + bh - 1, left, 1, -1),
            (top + bh - 1, left + bw - 1, 1, 1),
        ):
            n = min(r0 if dr < 0 else h - 1 - r0, c0 if dc < 0 else w - 1 - c0)
            k = np.arange(1, n + 1)
            mask[r0 + dr * k, c0 + dc * k] = True
        return mask & ~own
    if region == "rows":
        mask[top : top + bh, :] = True
    else:  # cols
        mask[:, left : left + bw] = True
    return mask & ~own


def _all_cells(objs: Objects) -> tuple[np.ndarray, np.ndarray]:
    cells = np.array([c for o in objs for c in o.cells], dtype=np.intp).reshape(-1, 2)
    return cells[:, 0], cells[:, 1]


def _union_region(grid: Grid, objs: Objects, region: str, bg: int) -> np.ndarray | None:
    """The union of the objects' regions, from the union of their cells, where that equals the object by
    object union (None where it does not, or no such shortcut exists). Regions painted over background
    only ignore object cells when every object cell is non-background (true of every `objects` set of the
    grid itself); `interior` and `outline` need the objects disjoint (labels tell them apart)."""
    if region in ("holes", "frame", "diagonals"):
        return None
    h, w = grid.shape
    rows, cols = _all_cells(objs)
    own = np.zeros((h, w), dtype=bool)
    own[rows, cols] = True
    if region == "cells":
        return own
    if region in ("interior", "outline"):
        if int(own.sum()) != rows.size:  # objects overlap
            return None
        label = np.full((h + 2, w + 2), -1, dtype=np.int32)
        label[rows + 1, cols + 1] = np.repeat(np.arange(len(objs)), [o.size for o in objs])
        mid = label[1:-1, 1:-1]
        inner = own & (label[:-2, 1:-1] == mid) & (label[2:, 1:-1] == mid) & (label[1:-1, :-2] == mid) & (label[1:-1, 2:] == mid)
        return inner if region == "interior" else own & ~inner
    if (grid[rows, cols] == bg).any():
        return None
    if region in ("halo", "halo8"):
        return _near(own, region == "halo8")
    if region in ("up", "down", "left", "right"):
        return _swept(own, *check_direction(region))
    mask = np.zeros((h, w), dtype=bool)
    if region in ("bbox", "rows", "cols"):
        for o in objs:
            top, left, bh, bw = o.bbox
            if region == "bbox":
                mask[top : top + bh, left : left + bw] = True
            elif region == "rows":
                mask[top : top + bh, :] = True
            else:
                mask[:, left : left + bw] = True
        return mask
    return None


def paint_region(grid: Grid, objs: Objects, region: Region, color: Color) -> Grid:
    """Paint a region of every object of the set (core.REGIONS): its own cells, interior and outline over anything, the others over background only."""
    check_choice(region, REGIONS, "region")
    color = check_color(color)
    _check_all_inside(grid, objs)
    bg = background_of(grid)
    paint = _union_region(grid, objs, region, bg) if objs else np.zeros(grid.shape, dtype=bool)
    if paint is None:  # object by object, by the definition
        paint = np.zeros(grid.shape, dtype=bool)
        for o in objs:
            paint |= _region(grid, o, region)
    if region not in ("cells", "interior", "outline"):
        paint &= grid == bg
    out = grid.copy()
    out[paint] = color
    return out


def map_objects(grid: Grid, objs: Objects, action: ObjectAction) -> Grid:
    """Change every object of the set in place by a named action (core.OBJECT_ACTIONS): recolor it with its majority or minority color, swap its two colors, or flip it within its box."""
    check_choice(action, OBJECT_ACTIONS, "object action")
    _check_all_inside(grid, objs)
    bg = background_of(grid)
    out = grid.copy()
    for o in objs:
        rows, cols = _cells(o)
        counts = Counter(o.values)
        if action in ("majority", "minority"):
            sign = -1 if action == "majority" else 1
            out[rows, cols] = min(counts.items(), key=lambda kv: (sign * kv[1], kv[0]))[0]
        elif action == "swap":
            if len(counts) == 2:
                a, b = sorted(counts)
                values = np.array(o.values, dtype=np.uint8)
                out[rows, cols] = np.where(values == a, b, a)
        else:
            top, left, bh, bw = o.bbox
            if action == "flip_h":
                rows2, cols2 = rows, 2 * left + bw - 1 - cols
            elif action == "flip_v":
                rows2, cols2 = 2 * top + bh - 1 - rows, cols
            else:  # rot180
                rows2, cols2 = 2 * top + bh - 1 - rows, 2 * left + bw - 1 - cols
            out[rows, cols] = bg
            out[rows2, cols2] = o.values
    return out


def slide(grid: Grid, objs: Objects, direction: Direction) -> Grid:
    """Move each object of the set up, down, left or right until it touches another cell or the border (the leading object moves first)."""
    dr, dc = check_direction(direction)
    if dr and dc:
        raise ValueError(f"slide needs up, down, left or right, got {direction!r}")
    _check_all_inside(grid, objs)
    bg = background_of(grid)
    out = grid.copy()
    # The object furthest along the direction moves first, so the ones behind it stack on it.
    order = sorted(objs, key=lambda o: -max(r * dr + c * dc for r, c in o.cells))
    for o in order:
        rows, cols = _cells(o)
        _push(out, rows, cols, dr, dc, bg)
    return out


def _push(out: np.ndarray, rows: np.ndarray, cols: np.ndarray, dr: int, dc: int, bg: int) -> None:
    """Move the cells (rows, cols) of `out` step by step along (dr, dc) until the next step would leave
    the grid or touch a cell that is not background; writes into `out`."""
    h, w = out.shape
    values = out[rows, cols].copy()
    out[rows, cols] = bg
    k = 0
    while True:
        r2, c2 = rows + dr * (k + 1), cols + dc * (k + 1)
        if r2.min() < 0 or c2.min() < 0 or r2.max() >= h or c2.max() >= w or (out[r2, c2] != bg).any():
            break
        k += 1
    out[rows + dr * k, cols + dc * k] = values


def move_toward(grid: Grid, objs: Objects, color: Color) -> Grid:
    """Move each object of the set straight toward the cells of a color, until it touches them; objects not level with any such cell stay."""
    color = check_color(color)
    _check_all_inside(grid, objs)
    bg = background_of(grid)
    h, w = grid.shape
    out = grid.copy()
    for o in objs:
        rows, cols = _cells(o)
        own = np.zeros((h, w), dtype=bool)
        own[rows, cols] = True
        tr, tc = np.nonzero((out == color) & ~own)
        if tr.size == 0:
            continue
        top, left, bh, bw = o.bbox
        if ((tr >= top) & (tr < top + bh)).any():  # level in rows: move sideways
            dr, dc = 0, (1 if tc.mean() > left + (bw - 1) / 2 else -1)
        elif ((tc >= left) & (tc < left + bw)).any():
            dr, dc = (1 if tr.mean() > top + (bh - 1) / 2 else -1), 0
        else:
            continue
        _push(out, rows, cols, dr, dc, bg)
    return out


def recolor_by_rank(grid: Grid, objs: Objects) -> Grid:
    """Recolor each object of the set by the rank of its size: the largest size becomes color 1, the next 2, and so on (at most 9 sizes)."""
    _check_all_inside(grid, objs)
    sizes = sorted({o.size for o in objs}, reverse=True)
    if len(sizes) > 9:
        raise ValueError(f"{len(sizes)} different sizes: more than 9 ranks to color")
    out = grid.copy()
    for o in objs:
        out[_cells(o)] = 1 + sizes.index(o.size)
    return out
