"""The DSL's types, its one error for grids that would be invalid, and small shared helpers.

Type aliases name what a value means to the program generator (solve.dsl.registry), not only what
Python type it is: a `Color` and an `Int` are both ints, but a generator draws them differently.
Every primitive annotates its parameters with these aliases; because of `from __future__ import
annotations` the annotations stay strings, and the registry test compares them to the registry.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

MAX_SIDE = 30  # same limit as augment.tasks.MAX_SIDE; not imported so the DSL needs numpy only
NUM_COLORS = 10

Grid: TypeAlias = np.ndarray  # 2-D uint8, values 0-9, sides 1..30
Mask: TypeAlias = np.ndarray  # 2-D uint8 of 0/1 (a grid too, so it can be shown and returned)
Color: TypeAlias = int  # 0..9
Int: TypeAlias = int  # a size, factor or count: >= 1
Index: TypeAlias = int  # a row or column position: >= 0
Offset: TypeAlias = int  # a signed displacement
Bool: TypeAlias = bool
Direction: TypeAlias = str  # one of DIRECTIONS
Colors: TypeAlias = "list[int]"
ColorMap: TypeAlias = "dict[int, int]"
Box: TypeAlias = "tuple[int, int, int, int]"  # (top, left, height, width)
# Names chosen from a short fixed list (the tuples below), so a search can enumerate them like colors.
ObjectFilter: TypeAlias = str  # one of OBJECT_FILTERS: which objects of a set to keep
Region: TypeAlias = str  # one of REGIONS: which cells around or inside each object to paint
ObjectAction: TypeAlias = str  # one of OBJECT_ACTIONS: what to do to each object in place
LineMode: TypeAlias = str  # one of LINE_MODES: along which lines same-colored cells are connected
CombineOp: TypeAlias = str  # one of COMBINE_OPS: how the panels of a split grid are combined cell by cell

# Each tuple is in rough order of usefulness on ARC tasks: a capped enumeration tries the first ones.
OBJECT_FILTERS = (
    "largest", "smallest", "has_hole", "unique_color", "unique_shape", "touches_border", "inner",
    "rectangle", "symmetric", "single_cell", "unique_size", "no_hole", "multi_cell",
)  # fmt: skip
REGIONS = (
    "cells", "holes", "interior", "bbox", "halo8", "frame", "outline", "halo",
    "up", "down", "left", "right", "rows", "cols", "diagonals",
)  # fmt: skip
OBJECT_ACTIONS = ("majority", "minority", "swap", "flip_h", "flip_v", "rot180")
LINE_MODES = ("h", "v", "hv", "diag", "all")
COMBINE_OPS = ("and", "or", "xor", "nor", "diff")

# Name -> (row step, column step). Rows grow downwards.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "down": (1, 0),
    "left": (0, -1),
    "right": (0, 1),
    "up_left": (-1, -1),
    "up_right": (-1, 1),
    "down_left": (1, -1),
    "down_right": (1, 1),
}


class GridSizeError(ValueError):
    """A result would be empty or larger than 30x30; raised instead of returning an invalid grid."""


def to_array(grid: Any) -> Grid:
    """A new uint8 array from a list of lists (or array) of ints 0-9; raise ValueError if it is no grid."""
    a = np.asarray(grid)
    if a.ndim != 2:
        raise ValueError(f"a grid must be 2-D, got {a.ndim} dimension(s)")
    if a.dtype.kind not in "iu":
        # bool is rejected on purpose: a cell that is True is a bug upstream, not color 1.
        raise ValueError(f"grid cells must be ints, got dtype {a.dtype}")
    check_side(*a.shape)
    if a.size and (a.min() < 0 or a.max() >= NUM_COLORS):
        raise ValueError(f"grid cells must be 0..9, got {int(a.min())}..{int(a.max())}")
    return a.astype(np.uint8)  # astype copies: the caller's list or array is never shared


def check_side(h: int, w: int, what: str = "result") -> None:
    """Raise GridSizeError unless a grid of h x w is a valid ARC grid."""
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise GridSizeError(f"{what} would be {h}x{w}; grids must be 1..{MAX_SIDE} on each side")


def check_color(c: int) -> int:
    """The color as a plain int; raise ValueError unless it is 0..9."""
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < NUM_COLORS:
        raise ValueError(f"color must be an int 0..9, got {c!r}")
    return int(c)


def check_positive(n: int, what: str) -> int:
    """The value as a plain int; raise ValueError unless it is an int >= 1."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be an int >= 1, got {n!r}")
    return int(n)


def check_direction(d: str) -> tuple[int, int]:
    """The (row step, column step) of a direction name; raise ValueError for unknown names."""
    try:
        return DIRECTIONS[d]
    except (KeyError, TypeError):
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {d!r}") from None


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """The value if it is one of the choices; raise ValueError naming them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def background_of(grid: Grid) -> Color:
    """The DSL's one meaning of background: the most common color, black (0) cells counted twice, ties to the smaller color."""
    counts = np.bincount(grid.ravel(), minlength=NUM_COLORS)
    # Black is ARC's usual empty cell: a small grid more than half drawn on (a 3x3 pattern, a panel)
    # still has a black background, while a field of another color with a few black cells keeps its own.
    counts[0] *= 2
    return int(counts.argmax())


def grid_out(a: np.ndarray) -> Grid:
    """A new contiguous uint8 copy of `a`, raising GridSizeError for empty or oversized shapes."""
    check_side(*a.shape)
    # Always a copy, never a view: a caller that writes into a result must not change the input.
    return np.array(a, dtype=np.uint8, order="C")
