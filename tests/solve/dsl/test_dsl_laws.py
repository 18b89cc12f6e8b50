"""Laws every primitive keeps, checked through the registry on random grids: inputs are never
changed, grid results are fresh uint8 grids of 1..30 per side with values 0-9, and a primitive that
cannot give a valid result raises ValueError instead."""

from __future__ import annotations

import numpy as np
import pytest
from dsl_strategies import build_args, grids, sparse_grids
from hypothesis import given, settings
from hypothesis import strategies as st

import solve.dsl as dsl
from solve.dsl import Object
from solve.dsl.registry import REGISTRY

RESULT_CHECKS = {
    "Grid": lambda v: isinstance(v, np.ndarray),
    "Mask": lambda v: isinstance(v, np.ndarray) and set(np.unique(v).tolist()) <= {0, 1},
    "Color": lambda v: type(v) is int and 0 <= v <= 9,
    "Int": lambda v: type(v) is int and v >= 0,
    "Object": lambda v: isinstance(v, Object),
    "Objects": lambda v: isinstance(v, tuple) and all(isinstance(o, Object) for o in v),
    "Colors": lambda v: isinstance(v, list) and all(type(c) is int for c in v),
    "Box": lambda v: isinstance(v, tuple) and len(v) == 4,
}


@pytest.mark.parametrize("prim", REGISTRY, ids=[p.name for p in REGISTRY])
@settings(max_examples=40, deadline=None)
@given(st.one_of(grids(), sparse_grids()), st.data())
def test_primitive_laws(prim, grid, data):
    args = build_args(prim, grid, data.draw)
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        out = getattr(dsl, prim.name)(*args)
    except ValueError:
        out = None  # an argument that does not fit this grid: allowed, as long as it is a ValueError
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{prim.name} changed its input"
    if out is None:
        return
    assert RESULT_CHECKS[prim.returns](out), f"{prim.name} returned {type(out).__name__}"
    if isinstance(out, np.ndarray):
        assert out.dtype == np.uint8 and out.ndim == 2
        assert 1 <= out.shape[0] <= 30 and 1 <= out.shape[1] <= 30
        assert out.size == 0 or int(out.max()) <= 9
        assert not any(np.shares_memory(out, a) for a in args if isinstance(a, np.ndarray)), prim.name
