"""Judge one candidate: a random program on a task's inputs, accepted or rejected with a reason.

Rejected: programs that fail, outputs that are not valid grids, programs that change nothing or give
the same output for every input (or only all-black grids), a pair whose output is its input, two
inputs with the same output, a shape class other than the one asked for (the corpus keeps ARC's share
of same-shape tasks), programs with a step that changes nothing on any input, deep programs that only
rotate or flip or that one common call reproduces, programs equal on the task to one with a step or a
pair of steps left out (reduce.py), object programs on inputs without two objects, tasks too long for
the prompt budget, tasks that share a grid with an evaluation set, behaviour already accepted on the
same inputs, and programs whose source, exec'd afresh, does not give the same outputs again
(non-determinism, or source that does not match). Color and count queries with one value on every
input are written as constants first (reduce.fold_constants); the verdict carries that program.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from augment.contamination import grid_key, is_trivial, leaks
from augment.transforms import dihedral
from solve.dsl import GridSizeError, objects
from solve.dsl.registry import GRID
from solve.synth.program import Program
from solve.synth.reduce import fold_constants, one_call, reducible

# Prompt budget: pretraining keeps tasks whose prompt fits ~1024 tokens, about one token per cell and
# one per row, and the program needs ~100 of them; a longer task would be generated for nothing.
MAX_PROMPT_CELLS = 900
# Primitives about objects: a task using them needs two objects or more in every input, or the rule
# that picks, moves or recolors one of them is not visible.
OBJECT_PRIMS = frozenset({
    "objects", "objects_of_color", "parts", "select_objects", "select_object", "largest_object",
    "smallest_object", "largest", "smallest", "move_object", "recolor_object", "delete_object",
    "keep_object", "remove_small_objects", "recolor_largest", "recolor_by_size", "box_outline",
    "fill_box", "keep_objects", "delete_objects", "paint_region", "map_objects", "slide", "move_toward",
    "recolor_by_rank", "crop_to_object", "count_objects", "object_color", "object_size",
})  # fmt: skip

REASONS = (
    "few_inputs",  # the corpus could not draw distinct generated inputs for the program's style
    "error",
    "bad_size",
    "invalid_output",
    "identity",
    "test_identity",
    "pair_identity",
    "constant",
    "repeated_output",
    "blank",
    "shape_class",
    "noop_step",
    "dihedral",
    "one_call",
    "reducible",
    "no_objects",
    "too_long",
    "contaminated",
    "duplicate",
    "nondeterministic",
)


@dataclass(frozen=True)
class Verdict:
    """`reason` is None when accepted; then `outputs` holds one grid per input, `key` the behaviour key
    and `program` the program to write (constants folded)."""

    reason: str | None
    outputs: tuple[np.ndarray, ...] = ()
    key: bytes = b""
    program: Program | None = None


def prompt_cells(inputs: list[np.ndarray], outputs: list[np.ndarray], n_train: int) -> int:
    """Cells plus rows of the train pairs and the test inputs: the grids' share of the prompt."""
    grids = [*inputs, *outputs[:n_train]]
    return sum(g.size + g.shape[0] for g in grids)


def object_count(grid: np.ndarray) -> int:
    """Objects of one color on the background, 4-connected (the DSL's `objects(grid, False, True)`)."""
    return len(objects(grid, False, True))


def behaviour_key(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> bytes:
    """A digest of the (input, output) pairs, order ignored: equal keys mean the same behaviour on the same inputs."""
    pairs = sorted(grid_key(i) + b"->" + grid_key(o) for i, o in zip(inputs, outputs))
    return hashlib.blake2b(b"|".join(pairs), digest_size=16).digest()


def _valid(out: object) -> bool:
    return (
        isinstance(out, np.ndarray)
        and out.dtype == np.uint8
        and out.ndim == 2
        and 1 <= out.shape[0] <= 30
        and 1 <= out.shape[1] <= 30
        and int(out.max()) <= 9
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def load_transform(source: str) -> Callable[[Any], Any]:
    """The `transform` function defined by a program's source, exec'd in a fresh namespace."""
    namespace: dict = {}
    exec(compile(source, "<synth program>", "exec"), namespace)
    return namespace["transform"]


def _trace(program: Program, inputs: list[np.ndarray]) -> list[list] | str:
    """Every value the program computes on each input, or the reject reason when it fails."""
    run = program.compile()
    traces = []
    for g in inputs:
        try:
            traces.append(run(g))
        except GridSizeError:
            return "bad_size"
        except Exception:  # noqa: BLE001 - a random program may fail in any way; that is a counted outcome
            return "error"
    return traces


def judge(
    program: Program,
    inputs: list[np.ndarray],
    n_train: int,
    eval_keys: frozenset[bytes],
    seen: set[bytes],
    keep_shape: bool | None = None,
) -> Verdict:
    """Accept or reject `program` on `inputs` (the first n_train are train inputs, the rest test inputs).
    keep_shape True/False: reject unless every / not every output has its input's shape."""
    traces = _trace(program, inputs)
    if isinstance(traces, str):
        return Verdict(traces)
    outputs = [t[-1] for t in traces]
    if not all(_valid(o) for o in outputs):
        return Verdict("invalid_output")
    folded = fold_constants(program, traces)
    if folded is not program:  # same outputs; the noop check below needs the new program's values
        program, traces = folded, _trace(folded, inputs)
        if isinstance(traces, str):
            raise AssertionError(f"folding constants broke a program:\n{program.source()}")
    identical = [_same(o, g) for o, g in zip(outputs, inputs)]
    if all(identical):
        return Verdict("identity")
    if any(identical[n_train:]):
        return Verdict("test_identity")  # a test whose answer is its question teaches nothing
    if any(identical):
        return Verdict("pair_identity")  # a pair that shows nothing; ARC's pairs each show the rule
    if all(_same(o, outputs[0]) for o in outputs[1:]):
        return Verdict("constant")
    if len({grid_key(o) for o in outputs}) < len(outputs):
        return Verdict("repeated_output")  # two inputs, one answer: a lookup, not a rule
    if not any(o.any() for o in outputs):
        return Verdict("blank")  # all black: only the shapes differ, nothing worth learning
    if keep_shape is not None and all(o.shape == g.shape for o, g in zip(outputs, inputs)) != keep_shape:
        return Verdict("shape_class")
    for i, step in enumerate(program.steps, start=1):
        kind, first = step.args[0]
        is_grid = kind == "ref" and (first == 0 or program.steps[first - 1].returns == GRID)
        if step.returns == GRID and is_grid and all(_same(t[i], t[first]) for t in traces):
            return Verdict("noop_step")
    if program.depth > 1:
        for d in range(1, 8):
            if all(_same(o, dihedral(d, g)) for o, g in zip(outputs, inputs)):
                return Verdict("dihedral")
        if one_call(inputs, outputs) is not None:
            return Verdict("one_call")
    if len(program.steps) > 1 and reducible(program, inputs, outputs):
        return Verdict("reducible")
    if OBJECT_PRIMS.intersection(s.prim for s in program.steps) and any(object_count(g) < 2 for g in inputs):
        return Verdict("no_objects")
    if prompt_cells(inputs, outputs, n_train) > MAX_PROMPT_CELLS:
        return Verdict("too_long")
    # augment.contamination's rule: an evaluation grid or its turned/recolored twin (one-color grids leak nothing).
    if any((grid_key(g) in eval_keys and not is_trivial(g)) or leaks(g) for g in (*inputs, *outputs)):
        return Verdict("contaminated")
    key = behaviour_key(inputs, outputs)
    if key in seen:
        return Verdict("duplicate")
    # The second run goes through the readable source, as a model or a sandbox would run it, so it
    # also proves that the source says exactly what the fast path computed.
    transform = load_transform(program.source())
    for g, o in zip(inputs, outputs):
        try:
            again = transform(g.tolist())
        except Exception:  # noqa: BLE001 - it ran once; failing now is the non-determinism we look for
            return Verdict("nondeterministic")
        if not isinstance(again, np.ndarray) or not _same(again, o):
            return Verdict("nondeterministic")
    return Verdict(None, tuple(outputs), key, program)
