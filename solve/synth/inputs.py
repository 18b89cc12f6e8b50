"""Input grids for synthetic tasks: generated in a few ARC-like styles, or taken from ARC training tasks.

All inputs of one task share a style, a background and a palette, so that one program means the same
thing on each of them (as in a real ARC task). Grids within a task are distinct. ARC-derived inputs
come only from the grids of one clean ARC-AGI-1 training task (augment.contamination.clean_training).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from augment.contamination import grid_key
from augment.tasks import Task

STYLES = ("objects", "noise", "symmetric", "points", "outlines")


def _canvas(h: int, w: int, bg: int) -> np.ndarray:
    return np.full((h, w), bg, dtype=np.uint8)


def _objects(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """A few filled rectangles and small random blobs on the background."""
    g = _canvas(h, w, bg)
    for _ in range(1 + int(rng.integers(4))):
        color = palette[int(rng.integers(len(palette)))]
        oh, ow = 1 + int(rng.integers(min(4, h))), 1 + int(rng.integers(min(4, w)))
        r, c = int(rng.integers(h - oh + 1)), int(rng.integers(w - ow + 1))
        if rng.random() < 0.5:
            g[r : r + oh, c : c + ow] = color
        else:  # a blob: a random subset of the box, never empty
            cells = rng.random((oh, ow)) < 0.6
            cells[int(rng.integers(oh)), int(rng.integers(ow))] = True
            g[r : r + oh, c : c + ow][cells] = color
    return g


def _noise(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """Scattered pixels of the palette at a random density."""
    g = _canvas(h, w, bg)
    on = rng.random((h, w)) < 0.05 + 0.25 * rng.random()
    g[on] = palette[rng.integers(len(palette), size=int(on.sum()))]
    return g


def _symmetric(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """A pattern mirrored left-right, upside down or both; sometimes with a patch blanked out."""
    g = _noise(rng, (h + 1) // 2, (w + 1) // 2, bg, palette)
    axes = int(rng.integers(3))  # 0: left-right, 1: upside down, 2: both
    if axes in (0, 2):
        g = np.hstack((g, g[:, ::-1][:, w % 2 :]))  # an odd width shares its middle column
    else:
        g = np.hstack((g, _noise(rng, g.shape[0], w // 2, bg, palette)))
    if axes in (1, 2):
        g = np.vstack((g, g[::-1, :][h % 2 :]))
    else:
        g = np.vstack((g, _noise(rng, h // 2, w, bg, palette)))
    if rng.random() < 0.4 and h > 2 and w > 2:
        bh, bw = 1 + int(rng.integers(h // 2)), 1 + int(rng.integers(w // 2))
        r, c = int(rng.integers(h - bh + 1)), int(rng.integers(w - bw + 1))
        g[r : r + bh, c : c + bw] = bg
    return g


def _points(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """A handful of single pixels."""
    g = _canvas(h, w, bg)
    n = 1 + int(rng.integers(min(5, h * w)))
    flat = rng.choice(h * w, size=n, replace=False)
    g.ravel()[flat] = palette[rng.integers(len(palette), size=n)]
    return g


def _outlines(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """Hollow rectangles (closed or with a gap), the shapes that fill and flood puzzles are made of."""
    g = _canvas(h, w, bg)
    for _ in range(1 + int(rng.integers(3))):
        if h < 3 or w < 3:
            break
        oh, ow = 3 + int(rng.integers(min(5, h - 2))), 3 + int(rng.integers(min(5, w - 2)))
        r, c = int(rng.integers(h - oh + 1)), int(rng.integers(w - ow + 1))
        color = palette[int(rng.integers(len(palette)))]
        g[r, c : c + ow] = g[r + oh - 1, c : c + ow] = color
        g[r : r + oh, c] = g[r : r + oh, c + ow - 1] = color
        if rng.random() < 0.3:
            g[r, c + 1 + int(rng.integers(ow - 2))] = bg
    return g


_STYLE_FNS: dict[str, Callable[..., np.ndarray]] = {
    "objects": _objects,
    "noise": _noise,
    "symmetric": _symmetric,
    "points": _points,
    "outlines": _outlines,
}


def generated_inputs(rng: np.random.Generator, k: int, exclude: frozenset[bytes] = frozenset()) -> tuple[str, list[np.ndarray]]:
    """(style, k distinct grids) of one style, background and palette, none whose grid_key is in
    `exclude` (e.g. evaluation grids: small simple grids do recur there); fewer grids only if the
    style keeps repeating itself, which the caller treats as a failed draw."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    bg = 0 if rng.random() < 0.8 else int(rng.integers(10))
    others = np.array([c for c in range(10) if c != bg], dtype=np.uint8)
    palette = rng.permutation(others)[: 1 + int(rng.integers(3))]
    big = rng.random() < 0.2  # mostly small grids: they leave room to tile, scale and concatenate
    lo, hi = (8, 21) if big else (3, 13)
    grids: list[np.ndarray] = []
    seen: set[bytes] = set()
    for _ in range(4 * k):
        h, w = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        g = _STYLE_FNS[style](rng, h, w, bg, palette)
        key = grid_key(g)
        if key not in seen and key not in exclude:
            seen.add(key)
            grids.append(g)
            if len(grids) == k:
                break
    return style, grids


def arc_pool(task: Task) -> list[np.ndarray]:
    """The distinct grids of an ARC task (inputs first, then outputs), to draw task inputs from."""
    pool, seen = [], set()
    grids = [p.input for p in task.train] + list(task.test_inputs)
    grids += [p.output for p in task.train] + list(task.test_outputs or ())
    for g in grids:
        key = grid_key(g)
        if key not in seen:
            seen.add(key)
            pool.append(g)
    return pool


def arc_inputs(rng: np.random.Generator, pool: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Up to k distinct grids drawn from an ARC task's pool, in random order."""
    order = rng.permutation(len(pool))[:k]
    return [pool[i] for i in order]
