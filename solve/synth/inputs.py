"""Input grids for synthetic tasks: generated in a few ARC-like styles, or taken from ARC training tasks.

All inputs of one task share a style, a background and a palette, so that one program means the same
thing on each of them (as in a real ARC task). Grids within a task are distinct. ARC-derived inputs
come only from the grids of one clean ARC-AGI-1 training task (augment.contamination.clean_training).

Generated inputs follow the program's concept (`concept_style`): a program about objects gets several
separated objects on a background, one that connects gets same-color pairs in line, one that fills
gets outlines, one that completes symmetry gets a symmetric pattern. Sides are 3..10 (a fifth of the
tasks 6..12): three pairs and a test input of that size fit a ~1024-token prompt.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from augment.contamination import grid_key
from augment.tasks import Task

STYLES = ("objects", "noise", "symmetric", "points", "outlines", "pairs")
SIDES = ((3, 10), (6, 12))  # inclusive side ranges: usual tasks, and a fifth of them larger
BIG_SHARE = 0.2
_MIN_SIDE = {"objects": 5, "outlines": 5, "pairs": 4}  # room for what the style draws
# Which style shows a primitive's concept; the first match in this order wins.
_CONCEPTS = (
    ("pairs", frozenset({"connect", "connect_same"})),
    ("outlines", frozenset({"fill_enclosed", "flood_fill"})),
    ("symmetric", frozenset({"complete_symmetry_h", "complete_symmetry_v", "fill_symmetric", "fill_periodic"})),
    ("noise", frozenset({"denoise"})),
)


def _canvas(h: int, w: int, bg: int) -> np.ndarray:
    return np.full((h, w), bg, dtype=np.uint8)


def _objects(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """Two to five filled rectangles and small blobs on the background, each with a free cell around
    it, so that every one is its own object (what object programs pick, move and recolor)."""
    g = _canvas(h, w, bg)
    want, placed = 2 + int(rng.integers(4)), 0
    most = max(1, min(4, (min(h, w) - 1) // 2))  # small enough that two fit with a gap
    for tries in range(6 * want):
        if placed < 2 and tries > 4 * want:  # running out of tries: a single cell fits where a box did not
            oh = ow = 1
        else:
            oh, ow = 1 + int(rng.integers(most)), 1 + int(rng.integers(most))
        r, c = int(rng.integers(h - oh + 1)), int(rng.integers(w - ow + 1))
        if not (g[max(r - 1, 0) : r + oh + 1, max(c - 1, 0) : c + ow + 1] == bg).all():
            continue  # touching another object, even at a corner: try another place
        color = palette[int(rng.integers(len(palette)))]
        if rng.random() < 0.5:
            g[r : r + oh, c : c + ow] = color
        else:  # a blob: a random subset of the box with a cell in its first row, never empty
            cells = rng.random((oh, ow)) < 0.6
            cells[0, int(rng.integers(ow))] = True
            g[r : r + oh, c : c + ow][cells] = color
        placed += 1
        if placed == want:
            break
    return g


def _pairs(rng: np.random.Generator, h: int, w: int, bg: int, palette: np.ndarray) -> np.ndarray:
    """One to three pairs of same-colored pixels on one row or one column, at least two cells apart
    with only background between them (what connect draws between), and sometimes a stray pixel."""
    g = _canvas(h, w, bg)
    want, placed = 1 + int(rng.integers(3)), 0
    for _ in range(8 * want):
        color = palette[int(rng.integers(len(palette)))]
        line = g[int(rng.integers(h))] if rng.random() < 0.5 else g[:, int(rng.integers(w))]  # a view: writes go to g
        a = int(rng.integers(len(line) - 2))
        b = int(rng.integers(a + 2, len(line)))
        if (line[max(a - 1, 0) : b + 2] == bg).all():  # a clear stretch, so the pair is its own
            line[a] = line[b] = color
            placed += 1
            if placed == want:
                break
    r, c = int(rng.integers(h)), int(rng.integers(w))
    if rng.random() < 0.3 and g[r, c] == bg:  # never over a pair's pixel
        g[r, c] = palette[int(rng.integers(len(palette)))]
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
    "pairs": _pairs,
}


def concept_style(primitives: list[str] | tuple[str, ...], object_prims: frozenset[str]) -> str | None:
    """The input style that shows what a program with these primitives does, or None (any style)."""
    used = set(primitives)
    if used & object_prims:
        return "objects"
    return next((style for style, prims in _CONCEPTS if used & prims), None)


def draw_look(rng: np.random.Generator) -> tuple[int, tuple[int, ...]]:
    """A task's background (mostly black) and its 1-3 other colors."""
    bg = 0 if rng.random() < 0.8 else int(rng.integers(10))
    # Black on another background would be taken for the background where it is common (the DSL
    # counts black twice), turning objects inside out: only a black background has black.
    others = np.array([c for c in range(1, 10) if c != bg], dtype=np.uint8)
    return bg, tuple(int(c) for c in rng.permutation(others)[: 1 + int(rng.integers(3))])


def styled_inputs(
    rng: np.random.Generator,
    k: int,
    style: str,
    bg: int,
    palette: tuple[int, ...],
    exclude: frozenset[bytes] = frozenset(),
) -> list[np.ndarray]:
    """k distinct grids of `style` on background `bg` in `palette`, none whose grid_key is in `exclude`
    (e.g. evaluation grids: small simple grids do recur there); fewer only if the style keeps
    repeating itself, which the caller treats as a failed draw."""
    lo, hi = SIDES[rng.random() < BIG_SHARE]
    lo = max(lo, _MIN_SIDE.get(style, 1))
    colors = np.array(palette, dtype=np.uint8)
    grids: list[np.ndarray] = []
    seen: set[bytes] = set()
    for _ in range(4 * k):
        h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
        g = _STYLE_FNS[style](rng, h, w, bg, colors)
        key = grid_key(g)
        if key not in seen and key not in exclude:
            seen.add(key)
            grids.append(g)
            if len(grids) == k:
                break
    return grids


def generated_inputs(rng: np.random.Generator, k: int, exclude: frozenset[bytes] = frozenset()) -> tuple[str, list[np.ndarray]]:
    """(style, k distinct grids) of one style, background and palette, none whose grid_key is in
    `exclude` (e.g. evaluation grids: small simple grids do recur there); fewer grids only if the
    style keeps repeating itself, which the caller treats as a failed draw."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    bg, palette = draw_look(rng)
    return style, styled_inputs(rng, k, style, bg, palette, exclude)


def arc_pool(task: Task, max_side: int = 30) -> list[np.ndarray]:
    """The distinct grids of an ARC task (inputs first, then outputs) with no side over `max_side`,
    to draw task inputs from."""
    pool, seen = [], set()
    grids = [p.input for p in task.train] + list(task.test_inputs)
    grids += [p.output for p in task.train] + list(task.test_outputs or ())
    for g in grids:
        key = grid_key(g)
        if key not in seen and max(g.shape) <= max_side:
            seen.add(key)
            pool.append(g)
    return pool


def arc_inputs(rng: np.random.Generator, pool: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Up to k distinct grids drawn from an ARC task's pool, in random order."""
    order = rng.permutation(len(pool))[:k]
    return [pool[i] for i in order]
