"""Random typed programs over the DSL: generation, evaluation and readable source.

A program is a list of steps in single-assignment form, exactly as its source reads: each step calls
one primitive on earlier values (the input grid is value 0) and constants. The generator builds a
chain of grid-valued calls; the other arguments are constants (colors drawn from the inputs' own
colors) or small query calls on the grid being transformed (its most common color, its largest
object, its number of objects...), so arguments stay meaningful on every input of a task.

Depth is the largest number of grid-valued calls on any path from the input to the result; queries
(colors, counts, objects, masks) are arguments and do not count.
"""

from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import Any, Callable

import numpy as np

import solve.dsl as dsl
from solve.dsl.registry import (
    BOOL,
    CHOICES,
    COLOR,
    COLOR_MAP,
    GRID,
    INDEX,
    INT,
    MASK,
    OBJECT,
    OBJECT_FILTER,
    OBJECTS,
    OFFSET,
    PARAM_CHOICES,
    Primitive,
    by_name,
    returning,
)

MAX_DEPTH = 4
DEPTH_WEIGHTS = (0.2, 0.3, 0.3, 0.2)  # depth 1..4 (deeper ones are rejected more often)

# How often a chain step uses each grid primitive, relative to 1. Lower: primitives that are rarely
# valid on arbitrary inputs (fixed positions, constant-looking builders) or that make near-duplicates.
_WEIGHTS = {
    "crop": 0.15, "draw_line": 0.3, "flood_fill": 0.4, "rot180": 0.7, "rot270": 0.7,
    "flip_antidiag": 0.5, "roll": 0.5, "shift": 0.5, "dedupe_lines": 0.5, "compress": 0.6,
    "canvas": 0.15, "bar_h": 0.2, "bar_v": 0.2, "checkerboard": 0.1, "stripes_h": 0.1, "stripes_v": 0.1,
    "diagonal_grid": 0.1, "blank_like": 0.2, "hconcat": 0.6, "vconcat": 0.6, "tile": 0.8,
    "upscale": 0.8, "downscale": 0.4, "recolor_map": 0.6, "move_object": 0.6,
}  # fmt: skip
# Primitives whose output has their (first) input's shape, whatever the arguments: a chain of them
# keeps the input's shape, as about 65 % of ARC-AGI-1 training tasks do (262 of 400).
SHAPE_KEEPING = frozenset({
    "rot180", "flip_h", "flip_v", "shift", "roll", "recolor", "recolor_map", "swap_colors",
    "replace_foreground", "keep_color", "remove_color", "move_object", "recolor_object", "delete_object",
    "keep_object", "remove_small_objects", "recolor_largest", "recolor_by_size", "apply_mask", "draw_line",
    "extend_color", "cross_lines", "draw_border", "box_outline", "fill_box", "halo", "flood_fill",
    "fill_enclosed", "complete_symmetry_h", "complete_symmetry_v", "gravity", "overlay", "cell_and",
    "cell_or", "cell_xor", "cell_nor", "cell_diff", "keep_objects", "delete_objects", "paint_region",
    "map_objects", "slide", "move_toward", "recolor_by_rank", "fill_periodic", "fill_symmetric",
    "connect", "connect_same", "extend_all", "denoise", "blank_like",
})  # fmt: skip
# Color parameters that name a color to change or keep: the background there recolors the whole
# field or keeps nothing, which ARC tasks almost never do, so they take foreground colors only.
_SOURCE_COLORS = {("recolor", "a"), ("swap_colors", "a"), ("swap_colors", "b"), ("keep_color", "color")}
_SPLITS = (("left_half", "right_half"), ("top_half", "bottom_half"))
_CELLWISE = {"overlay", "cell_and", "cell_or", "cell_xor", "cell_nor", "cell_diff"}
_TWO_GRID = {"hconcat", "vconcat"} | _CELLWISE
_COLOR_QUERIES = ("most_common_color", "least_common_color", "most_common_foreground")
# Every synthetic program, so every program the prior learned, opens with these lines.
PROGRAM_HEADER = "from solve.dsl import *\n\n\ndef transform(grid):\n    g = to_array(grid)"

_PREFIX = {GRID: "x", COLOR: "c", INT: "n", OBJECT: "obj", OBJECTS: "objs", MASK: "m"}


@dataclass(frozen=True)
class Step:
    """One call: `prim` applied to `args`, each ('ref', index of an earlier value) or ('const', value)."""

    prim: str
    args: tuple[tuple[str, Any], ...]
    returns: str


@dataclass(frozen=True)
class Program:
    """Steps in order; value 0 is the input grid, value i is the result of step i-1; the last is the output."""

    steps: tuple[Step, ...]
    depth: int

    @property
    def primitives(self) -> list[str]:
        """The primitives used, sorted, each once."""
        return sorted({s.prim for s in self.steps})

    def compile(self) -> Callable[[np.ndarray], list[Any]]:
        """A fast function from an input grid to every value the program computes (the output is the
        last), equivalent to exec'ing `source()`; the intermediate values let callers spot no-op steps."""
        fns = _functions()
        plan = [(fns[s.prim], tuple((kind == "ref", v) for kind, v in s.args)) for s in self.steps]

        def run(grid: np.ndarray) -> list[Any]:
            env = [grid]
            for fn, args in plan:
                env.append(fn(*[env[v] if is_ref else v for is_ref, v in args]))
            return env

        return run

    def source(self) -> str:
        """The program as Python: `from solve.dsl import *` and `def transform(grid)`, one call per line."""
        names = ["g"]
        counters: dict[str, int] = {}
        lines = PROGRAM_HEADER.split("\n")
        for s in self.steps:
            prefix = _PREFIX.get(s.returns, "v")
            counters[prefix] = counters.get(prefix, 0) + 1
            name = f"{prefix}{counters[prefix]}"
            args = ", ".join(names[v] if kind == "ref" else repr(v) for kind, v in s.args)
            lines.append(f"    {name} = {s.prim}({args})")
            names.append(name)
        lines.append(f"    return {names[-1]}")
        return "\n".join(lines) + "\n"


@cache
def _functions() -> dict[str, Callable]:
    return {p.name: getattr(dsl, p.name) for p in by_name().values()}


@cache
def _chain_table(kind: str = "all") -> tuple[tuple[Primitive, ...], tuple[float, ...]]:
    """Grid-valued primitives a chain step may use ("all", "keep": SHAPE_KEEPING, "change": the others),
    with cumulative weights for fast weighted draws."""
    prims = tuple(p for p in returning(GRID) if kind == "all" or (p.name in SHAPE_KEEPING) == (kind == "keep"))
    return prims, tuple(accumulate(_WEIGHTS.get(p.name, 1.0) for p in prims))


class _Builder:
    """Accumulates steps for one program; `rng` drives every choice."""

    def __init__(self, rng: np.random.Generator, palette: tuple[int, ...], background: int | None = None):
        self.rng = rng
        self.palette = palette
        self.background = background
        self.foreground = tuple(c for c in palette if c != background)
        self.steps: list[Step] = []
        self.depth = [0]  # grid-call depth of each value (queries carry their grid's depth)

    def add(self, prim: str, args: list[tuple[str, Any]], returns: str, depth: int) -> int:
        self.steps.append(Step(prim, tuple(args), returns))
        self.depth.append(depth)
        return len(self.steps)

    def pick(self, options: tuple[Any, ...]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def color(self) -> int:
        if self.palette and self.rng.random() < 0.8:
            return self.pick(self.palette)
        return int(self.rng.integers(10))

    def constant(self, prim: str, name: str, type_: str) -> Any:
        r = self.rng.random()
        if (prim, name) in PARAM_CHOICES:  # parameters that take only part of their type's range
            return self.pick(PARAM_CHOICES[(prim, name)])
        if (prim, name) in _SOURCE_COLORS and self.foreground:
            return self.pick(self.foreground)
        if type_ == COLOR:
            if prim in _CELLWISE:  # they paint on 0: painting with 0 would give a blank grid
                return 1 + int(self.rng.integers(9))
            return self.color()
        if type_ == INT:
            return 1 if r < 0.45 else 2 if r < 0.85 else 3
        if type_ == INDEX:
            return 0 if r < 0.7 else 1 if r < 0.9 else 2
        if type_ == OFFSET:
            return (-2, -1, 1, 2)[int(r * 4)]
        if type_ == BOOL:
            return r < 0.5
        if type_ in CHOICES:  # directions and the named choices (object filters, regions, ...)
            return self.pick(CHOICES[type_])
        if type_ == COLOR_MAP:
            # Foreground colors only, and no entry {c: c}: an entry that changes nothing claims a rule
            # the pairs cannot show, and recoloring the background recolors the whole field.
            sources = list(self.foreground) or [c for c in range(1, 10) if c != self.background]
            n = 1 + int(self.rng.integers(min(3, len(sources))))
            olds = [sources[i] for i in self.rng.permutation(len(sources))[:n]]
            mapping = {}
            for old in sorted(olds):
                new = self.color()
                mapping[old] = new if new != old else (old + 1 + int(self.rng.integers(9))) % 10
            return mapping
        raise ValueError(f"no constant for type {type_}")

    def query(self, type_: str, grid: int) -> int:
        """A step computing a value of `type_` from the grid value `grid`; returns its value index."""
        d = self.depth[grid]
        if type_ == COLOR:
            if self.rng.random() < 0.75:
                return self.add(self.pick(_COLOR_QUERIES), [("ref", grid)], COLOR, d)
            obj = self.query(OBJECT, grid)
            return self.add("object_color", [("ref", obj)], COLOR, d)
        if type_ == INT:
            r = self.rng.random()
            if r < 0.4:
                return self.add("count_objects", [("ref", grid), ("const", self.rng.random() < 0.5)], INT, d)
            if r < 0.6:
                return self.add("count_colors", [("ref", grid)], INT, d)
            if r < 0.8:
                return self.add("count_color", [("ref", grid), ("const", self.color())], INT, d)
            obj = self.query(OBJECT, grid)
            return self.add("object_size", [("ref", obj)], INT, d)
        if type_ == OBJECT:
            r = self.rng.random()
            if r < 0.15:
                pred = self.pick(CHOICES[OBJECT_FILTER])
                args = [("ref", grid), ("const", pred), ("const", self.rng.random() < 0.5), ("const", self.rng.random() < 0.3)]
                return self.add("select_object", args, OBJECT, d)
            if r < 0.7:
                name = "largest_object" if r < 0.45 else "smallest_object"
                return self.add(name, [("ref", grid), ("const", self.rng.random() < 0.5)], OBJECT, d)
            objs = self.query(OBJECTS, grid)
            return self.add("largest" if r < 0.85 else "smallest", [("ref", objs)], OBJECT, d)
        if type_ == OBJECTS:
            r = self.rng.random()
            if r < 0.4:
                args = [("ref", grid), ("const", self.rng.random() < 0.5), ("const", True)]
                objs = self.add("objects", args, OBJECTS, d)
            elif r < 0.7:
                args = [("ref", grid), ("const", self.color()), ("const", self.rng.random() < 0.5)]
                objs = self.add("objects_of_color", args, OBJECTS, d)
            elif r < 0.8:
                objs = self.add("parts", [("ref", grid), ("const", self.rng.random() < 0.5)], OBJECTS, d)
            else:  # a named subset: the largest, those with a hole, ...
                pred = self.pick(CHOICES[OBJECT_FILTER])
                args = [("ref", grid), ("const", pred), ("const", self.rng.random() < 0.5), ("const", self.rng.random() < 0.3)]
                objs = self.add("select_objects", args, OBJECTS, d)
            return objs
        if type_ == MASK:
            r = self.rng.random()
            if r < 0.5:
                m = self.add("mask_of_color", [("ref", grid), ("const", self.color())], MASK, d)
            else:
                m = self.add("foreground_mask", [("ref", grid)], MASK, d)
            if self.rng.random() < 0.3:
                m = self.add("invert_mask", [("ref", m)], MASK, d)
            return m
        raise ValueError(f"no query for type {type_}")

    def chain_step(self, cur: int, room: int, kind: str = "all") -> int:
        """Apply one grid primitive of `kind` (see _chain_table) to the current value, adding at most
        `room` depth; returns the new value."""
        prims, cum = _chain_table(kind)
        earlier = tuple(i for i in range(len(self.depth)) if i != cur and (i == 0 or self.steps[i - 1].returns == GRID))
        can_split = room >= 2 and kind != "keep"  # halves change the shape
        while True:
            prim = prims[bisect(cum, self.rng.random() * cum[-1])]
            # A cell-by-cell combination of a grid with itself is trivial: it needs halves or another grid.
            if prim.name not in _CELLWISE or earlier or can_split:
                break
        n_grids = sum(p.type == GRID for p in prim.params)
        split = prim.name in _TWO_GRID and can_split and (self.rng.random() < 0.6 or (prim.name in _CELLWISE and not earlier))
        if split:
            # The usual ARC shape of a two-panel puzzle: the two halves of one grid, combined.
            first, second = self.pick(_SPLITS)
            d = self.depth[cur] + 1
            grids = [self.add(first, [("ref", cur)], GRID, d), self.add(second, [("ref", cur)], GRID, d)]
        else:
            grids = [cur] + [self.pick(earlier or (cur,)) for _ in range(n_grids - 1)]
        # Builders take no grid: make at least one of their numbers depend on the input, or the
        # output would be the same for every input (rejected as constant anyway, so do not waste the try).
        force_query = n_grids == 0
        args: list[tuple[str, Any]] = []
        next_grid = iter(grids)
        for p in prim.params:
            if p.type == GRID:
                args.append(("ref", next(next_grid)))
            elif p.type in (OBJECT, OBJECTS, MASK):
                args.append(("ref", self.query(p.type, grids[0])))
            elif p.type in (COLOR, INT) and (force_query or self.rng.random() < (0.2 if p.type == COLOR else 0.1)):
                force_query = False
                args.append(("ref", self.query(p.type, grids[0])))
            else:
                args.append(("const", self.constant(prim.name, p.name, p.type)))
        # Every step refers to at least one earlier value: a grid, or (for builders) a forced query.
        depth = 1 + max(self.depth[v] for kind, v in args if kind == "ref")
        return self.add(prim.name, args, GRID, depth)


def random_program(
    rng: np.random.Generator,
    palette: tuple[int, ...],
    depth: int | None = None,
    keep_shape: bool | None = None,
    background: int | None = None,
) -> Program:
    """A random program of the given depth (1..4; drawn when None), with color constants mostly from
    `palette`. keep_shape True: only SHAPE_KEEPING steps; False: one step (at a random depth) changes
    the shape; None: any steps. `background`, when known, is never a recolor's source."""
    if depth is None:
        r, depth = rng.random(), 1
        for w in accumulate(DEPTH_WEIGHTS):
            if r < w:
                break
            depth += 1
        depth = min(depth, MAX_DEPTH)
    b = _Builder(rng, palette, background)
    change_at = int(rng.integers(depth)) if keep_shape is False else -1
    cur = 0
    while b.depth[cur] < depth:
        kind = "all" if keep_shape is None else "keep" if keep_shape or b.depth[cur] != change_at else "change"
        cur = b.chain_step(cur, depth - b.depth[cur], kind)
    return Program(tuple(b.steps), b.depth[cur])
