"""Judge one candidate: a random program on a task's inputs, accepted or rejected with a reason.

Rejected: programs that fail, outputs that are not valid grids, programs that change nothing or give
the same output for every input (or only all-black grids), programs with a step that changes nothing on any input, deep
programs that only rotate or flip (they claim more than they do), tasks that share a grid with an
evaluation set, behaviour already accepted on the same inputs, and programs whose source, exec'd
afresh, does not give the same outputs again (non-determinism, or source that does not match).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from augment.contamination import grid_key, is_trivial, leaks
from augment.transforms import dihedral
from solve.dsl import GridSizeError
from solve.dsl.registry import GRID
from solve.synth.program import Program

REASONS = (
    "error",
    "bad_size",
    "invalid_output",
    "identity",
    "test_identity",
    "constant",
    "blank",
    "noop_step",
    "dihedral",
    "contaminated",
    "duplicate",
    "nondeterministic",
)


@dataclass(frozen=True)
class Verdict:
    """`reason` is None when accepted; then `outputs` holds one grid per input and `key` the behaviour key."""

    reason: str | None
    outputs: tuple[np.ndarray, ...] = ()
    key: bytes = b""


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


def judge(
    program: Program, inputs: list[np.ndarray], n_train: int, eval_keys: frozenset[bytes], seen: set[bytes]
) -> Verdict:
    """Accept or reject `program` on `inputs` (the first n_train are train inputs, the rest test inputs)."""
    run = program.compile()
    traces = []
    for g in inputs:
        try:
            traces.append(run(g))
        except GridSizeError:
            return Verdict("bad_size")
        except Exception:  # noqa: BLE001 - a random program may fail in any way; that is a counted outcome
            return Verdict("error")
    outputs = [t[-1] for t in traces]
    if not all(_valid(o) for o in outputs):
        return Verdict("invalid_output")
    if all(_same(o, g) for o, g in zip(outputs, inputs)):
        return Verdict("identity")
    if any(_same(o, g) for o, g in zip(outputs[n_train:], inputs[n_train:])):
        return Verdict("test_identity")  # a test whose answer is its question teaches nothing
    if all(_same(o, outputs[0]) for o in outputs[1:]):
        return Verdict("constant")
    if not any(o.any() for o in outputs):
        return Verdict("blank")  # all black: only the shapes differ, nothing worth learning
    for i, step in enumerate(program.steps, start=1):
        kind, first = step.args[0]
        is_grid = kind == "ref" and (first == 0 or program.steps[first - 1].returns == GRID)
        if step.returns == GRID and is_grid and all(_same(t[i], t[first]) for t in traces):
            return Verdict("noop_step")
    if program.depth > 1:
        for d in range(1, 8):
            if all(_same(o, dihedral(d, g)) for o, g in zip(outputs, inputs)):
                return Verdict("dihedral")
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
    return Verdict(None, tuple(outputs), key)
