"""Hypothesis strategies and argument builders shared by the DSL tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import solve.dsl as dsl
from solve.dsl.registry import CHOICES, PARAM_CHOICES, Primitive


def grids(max_side: int = 30, max_color: int = 9) -> st.SearchStrategy[np.ndarray]:
    """Valid ARC grids: uint8, 1..max_side on each side, values 0..max_color."""
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return hnp.arrays(np.uint8, shape, elements=st.integers(0, max_color))


def sparse_grids(max_side: int = 12) -> st.SearchStrategy[np.ndarray]:
    """Grids that look like ARC inputs: mostly background 0, a few colors (so objects are meaningful)."""
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    cell = st.sampled_from([0, 0, 0, 0, 1, 2, 5])
    return hnp.arrays(np.uint8, shape, elements=cell)


def build_args(prim: Primitive, grid: np.ndarray, draw) -> list:
    """Arguments for a primitive from a grid and a hypothesis `draw`, one per parameter type."""
    args = []
    for p in prim.params:
        t = p.type
        if t == "Grid":
            args.append(grid)
        elif (prim.name, p.name) in PARAM_CHOICES:
            args.append(draw(st.sampled_from(PARAM_CHOICES[(prim.name, p.name)])))
        elif t in CHOICES:
            args.append(draw(st.sampled_from(CHOICES[t])))
        elif t == "Color":
            args.append(draw(st.integers(0, 9)))
        elif t == "Int":
            args.append(draw(st.integers(1, 4)))
        elif t == "Index":
            args.append(draw(st.integers(0, 3)))
        elif t == "Offset":
            args.append(draw(st.integers(-3, 3)))
        elif t == "Mask":
            args.append(dsl.mask_of_color(grid, draw(st.integers(0, 9))))
        elif t == "ColorMap":
            perm = draw(st.permutations(list(range(10))))
            args.append(dict(enumerate(perm)))
        elif t == "Objects":
            if draw(st.booleans()):
                args.append(dsl.parts(grid, draw(st.booleans())))
            else:
                args.append(dsl.objects(grid, draw(st.booleans()), draw(st.booleans())))
        elif t == "Object":
            objs = dsl.objects(grid, False, False)
            args.append(objs[draw(st.integers(0, len(objs) - 1))])
        else:
            raise AssertionError(f"no test argument for type {t}")
    return args
