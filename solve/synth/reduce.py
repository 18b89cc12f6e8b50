"""Shorter equivalents of a synthetic program: rewriting, constant folding, and the reducibility checks.

A task teaches a program only if no shorter program explains its pairs as well: otherwise the model
learns to write steps that do nothing visible (`flip_h -> crop largest -> flip_h` is one crop).
- `fold_constants`: a color or count query with one value on every input of the task becomes that
  constant. The rule (one rule, applied everywhere): a query is written only where the pairs identify
  it, i.e. where its value differs between inputs; where three pairs cannot tell `least_common_color(g)`
  from `3`, the program says `3`.
- `reducible`: dropping one grid step, or any two (a cancelling pair), gives the same outputs.
- `one_call`: one call from a small fixed set of common one-call programs (dihedral turns, crops,
  halves, mirrors, scalings, gravity...) gives the same outputs.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations
from typing import Any, Callable

import numpy as np

import solve.dsl as dsl
from augment.transforms import dihedral
from solve.dsl.registry import COLOR, GRID, INT
from solve.synth.program import Program, Step


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))


def rewrite(program: Program, subst: dict[int, tuple[str, Any]]) -> Program:
    """`program` with the values in `subst` (value index -> ('ref', j) or ('const', v)) replaced in every
    argument, and every step the output no longer needs dropped; indices renumbered."""

    def resolve(arg: tuple[str, Any]) -> tuple[str, Any]:
        while arg[0] == "ref" and arg[1] in subst:
            arg = subst[arg[1]]
        return arg

    steps = [Step(s.prim, tuple(resolve(a) for a in s.args), s.returns) for s in program.steps]
    # Live values: walk back from the output (the last value, or what it was replaced by).
    out = resolve(("ref", len(steps)))
    live, todo = set(), [out[1]] if out[0] == "ref" else []
    while todo:
        v = todo.pop()
        if v in live or v == 0:
            continue
        live.add(v)
        todo.extend(a[1] for a in steps[v - 1].args if a[0] == "ref")
    new_index = {0: 0}
    kept: list[Step] = []
    for v in sorted(live):
        s = steps[v - 1]
        kept.append(Step(s.prim, tuple(("ref", new_index[a[1]]) if a[0] == "ref" else a for a in s.args), s.returns))
        new_index[v] = len(kept)
    return Program(tuple(kept), program.depth)


def fold_constants(program: Program, traces: list[list[Any]]) -> Program:
    """Replace each color/count query whose value is the same on every input by that constant (see the module doc)."""
    subst: dict[int, tuple[str, Any]] = {}
    for v, s in enumerate(program.steps, start=1):
        if s.returns in (COLOR, INT):
            first = traces[0][v]
            if all(t[v] == first for t in traces[1:]):
                subst[v] = ("const", int(first))
    return rewrite(program, subst) if subst else program


def _grid_steps(program: Program) -> list[int]:
    """Values of the grid steps that take a grid first: dropping one means passing that grid through."""
    out = []
    for v, s in enumerate(program.steps, start=1):
        kind, first = s.args[0] if s.args else ("const", None)
        if s.returns == GRID and kind == "ref" and (first == 0 or program.steps[first - 1].returns == GRID):
            out.append(v)
    return out


def _gives(program: Program, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> bool:
    if not program.steps:
        return all(_same(g, o) for g, o in zip(inputs, outputs))
    run = program.compile()
    for g, o in zip(inputs, outputs):
        try:
            if not _same(run(g)[-1], o):
                return False
        except Exception:  # noqa: BLE001 - a shortened program that fails is simply not equivalent
            return False
    return True


def reducible(program: Program, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> bool:
    """True when dropping one grid step, or two (a pair that cancels out), gives the same outputs."""
    steps = _grid_steps(program)
    if len(steps) < 2:  # dropping the only grid step gives the input, and the judge rejects identical pairs
        return False
    first = {v: program.steps[v - 1].args[0] for v in steps}
    for v in steps:
        if _gives(rewrite(program, {v: first[v]}), inputs, outputs):
            return True
    for a, b in combinations(steps, 2):
        if _gives(rewrite(program, {a: first[a], b: first[b]}), inputs, outputs):
            return True
    return False


@cache
def _one_calls() -> tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...]:
    """The fixed set of common one-call programs (name, function): cheap, argument-free or nearly."""
    calls: list[tuple[str, Callable]] = [(f"dihedral{d}", lambda g, d=d: dihedral(d, g)) for d in range(1, 8)]
    for name in ("crop_to_content", "trim_border", "compress", "dedupe_lines", "mirror_right", "mirror_down",
                 "mirror_quad", "top_half", "bottom_half", "left_half", "right_half", "complete_symmetry_h",
                 "complete_symmetry_v"):  # fmt: skip
        calls.append((name, getattr(dsl, name)))
    for k in (2, 3):
        calls.append((f"upscale{k}", lambda g, k=k: dsl.upscale(g, k)))
        calls.append((f"downscale{k}", lambda g, k=k: dsl.downscale(g, k)))
    calls.append(("tile2x2", lambda g: dsl.tile(g, 2, 2)))
    for direction in ("up", "down", "left", "right"):
        calls.append((f"gravity_{direction}", lambda g, d=direction: dsl.gravity(g, d)))
    for diagonal in (False, True):
        calls.append((f"crop_largest{int(diagonal)}", lambda g, d=diagonal: dsl.crop_to_object(g, dsl.largest_object(g, d))))
        calls.append((f"keep_largest{int(diagonal)}", lambda g, d=diagonal: dsl.keep_object(g, dsl.largest_object(g, d))))
    return tuple(calls)


def one_call(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> str | None:
    """The name of a call from the fixed set that maps every input to its output, or None.
    Input 0 is tried first: almost every call fails there, so the check costs ~30 calls on one grid."""
    return next((name for name, fn in _one_calls() if _reproduces(fn, inputs, outputs)), None)


def _reproduces(fn: Callable[[np.ndarray], np.ndarray], inputs: list[np.ndarray], outputs: list[np.ndarray]) -> bool:
    try:
        return all(_same(fn(g), o) for g, o in zip(inputs, outputs))
    except (ValueError, IndexError, dsl.GridSizeError):  # e.g. downscale of an odd size: cannot reproduce it
        return False
