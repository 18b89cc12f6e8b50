"""Hindsight relabelling: every program that ran defines a task it solves exactly.

A program written for a view of the task that returned a grid for every train input of that view is,
by construction, right on the task "those inputs -> its own outputs", whatever the real outputs are.
Relabelled so, it is a code-from-examples training sample with the program as target, in the one
format pretraining and inference use (`ttt.prompts.encode_sample`, kind "program": the pairs, the
view's test inputs shown as at inference, the program as answer). Test-time search trains on these so
the adapter learns what programs of this task look like (SOAR, arc25).

Never a test output: a relabelled task holds the view's train inputs, the program's outputs on them,
and the test inputs, never any output for a test input (the program's included).

Deduplicated by behaviour: the same outputs in the same view give one sample, from the best program
giving them (train accuracy, then cells right, then the shortest source), and there are at most `cap`.
Test-time search passes the behaviours earlier rounds trained on (`exclude`), so a round adds only new
ones instead of retraining the same top programs. Degenerate behaviours teach nothing about the task and
are left out: returning the input on every pair (unless some real pair is the identity), and a
constant answer (one grid for every input, or single-colour grids, unless the real outputs are so).
Lookup tables of the train outputs (`ProgramResult.lookup`) are left out too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Mapping, Sequence

import numpy as np

from augment.tasks import Pair, Task
from augment.transforms import Augmentation
from solve.sandbox.verify import ProgramResult
from ttt.prompts import Encoded, encode_sample, program_answer


@dataclass(frozen=True)
class Relabelled:
    """A program and the task it solves by construction, in the frame of the view it was written for."""

    program_id: str
    view: Augmentation
    source: str
    task: Task  # the view's train inputs -> the program's outputs; the view's test inputs; no test outputs
    behaviour: tuple[Any, ...]  # (view name, its outputs): what `relabel(exclude=...)` skips


def behaviour_of(r: ProgramResult) -> tuple[Any, ...]:
    """A program's behaviour in its view: the view's name and what it returned on each train input."""
    return (r.view_name, *(None if o is None else (o.shape, o.tobytes()) for o in r.train_outputs))


def degenerate(r: ProgramResult, view_task: Task) -> bool:
    """True for a program that returns its input on every pair, or a constant answer (one grid for every
    input, or single-colour grids), when the task's real pairs are not like that themselves."""
    outs, pairs = r.train_outputs, view_task.train
    if not any(np.array_equal(p.input, p.output) for p in pairs) and all(np.array_equal(o, p.input) for o, p in zip(outs, pairs)):
        return True
    single = all(bool((o == o.flat[0]).all()) for o in outs)
    if single and not any(bool((p.output == p.output.flat[0]).all()) for p in pairs):
        return True
    same = len(outs) > 1 and all(o.shape == outs[0].shape and np.array_equal(o, outs[0]) for o in outs)
    return same and not all(np.array_equal(p.output, pairs[0].output) for p in pairs)


def ran_everywhere(r: ProgramResult) -> bool:
    """True when the program returned a grid for every train input (what relabelling needs)."""
    return r.train_total > 0 and len(r.train_outputs) == r.train_total and all(o is not None for o in r.train_outputs)


def relabel(
    task: Task, results: Sequence[ProgramResult], views: Mapping[str, Augmentation], cap: int, exclude: AbstractSet[tuple[Any, ...]] = frozenset()
) -> list[Relabelled]:
    """The relabelled tasks of `results` (best programs first, one per behaviour, at most `cap`), leaving
    out lookup tables, degenerate behaviours and those in `exclude`. `views`: each result's view by name."""
    ranked = sorted(enumerate(results), key=lambda ir: (-ir[1].train_correct, -ir[1].train_cells, len(ir[1].source), ir[0]))
    seen: set[tuple[Any, ...]] = set()
    view_tasks: dict[str, Task] = {}
    out: list[Relabelled] = []
    for _, r in ranked:
        if len(out) >= cap:
            break
        if not ran_everywhere(r) or r.lookup is not None:
            continue
        behaviour = behaviour_of(r)
        if behaviour in seen or behaviour in exclude:
            continue
        seen.add(behaviour)
        view = views[r.view_name]
        vt = view_tasks.get(r.view_name) or view_tasks.setdefault(r.view_name, view.apply_task(task))
        if degenerate(r, vt):
            continue
        pairs = tuple(Pair(p.input, output) for p, output in zip(vt.train, r.train_outputs))
        out.append(Relabelled(r.program_id, view, r.source, Task(f"{task.id}:hindsight:{r.program_id}", pairs, vt.test_inputs), behaviour))
    return out


def hindsight_samples(tokenizer: Any, relabelled: Sequence[Relabelled], max_seq_len: int) -> tuple[list[Encoded], int]:
    """Training samples of relabelled tasks (pairs dropped from the start to fit, as for every sample),
    and how many did not fit at all."""
    out, dropped = [], 0
    for h in relabelled:
        t = h.task
        enc = encode_sample(tokenizer, t.train, None, program_answer(h.source), "program", max_seq_len, t.test_inputs)
        if enc is None:
            dropped += 1
        else:
            out.append(enc)
    return out, dropped
