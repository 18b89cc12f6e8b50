"""Verify candidate programs on a task: run each on its view's train and test inputs, score, map back.

A candidate was written for one view of the task (an `Augmentation`; identity for the plain task). It
runs on that view's grids; train accuracy is measured in the view (augmentations are bijections, so it
equals accuracy on the original), and test outputs are mapped back with `aug.invert_grid`.
Duplicates (same view, same normalized source) run once; `copies` counts them. Each result also keeps
what the program returned on the view's train inputs (for test-time search: hindsight relabelling and
revision prompts, `solve.pipeline.search`). A program that is a lookup table of the train outputs
(`lookup_table`) never counts as verified; its result says why.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from augment.tasks import Task
from augment.transforms import Augmentation
from solve.sandbox.pool import Grid, GridResult, RunRecord, Sandbox
from solve.sandbox.programs import normalize_source


@dataclass(frozen=True)
class Candidate:
    program_id: str
    source: str
    view: Augmentation = field(default_factory=Augmentation)
    logprob: float | None = None  # the model's summed log-probability of the sampled text, when known
    origin: str = "model"  # who wrote it: "model" (sampled), "dsl" (solve.dsl_search), or a search round's origin


@dataclass
class ProgramResult:
    program_id: str
    view_name: str
    source: str
    train_correct: int
    train_total: int
    test_outputs: list[np.ndarray | None]  # in the original task's frame; None where the run failed
    errors: dict[str, int]  # error class -> number of grids (train + test) that failed with it
    seconds: float
    program_error: str | None = None  # syntax, no_transform, timeout, ... (None when every grid ran)
    copies: int = 1  # how many submitted candidates were this same program in this same view
    duplicate_ids: tuple[str, ...] = ()
    # Per train pair, in the view's frame: the program's output (None where it failed) and its error class.
    train_outputs: list[np.ndarray | None] = field(default_factory=list)
    train_errors: list[str | None] = field(default_factory=list)
    train_cells: float = 0.0  # mean over train pairs of the share of cells right (0 for a wrong shape or a failure)
    logprob: float | None = None  # the best of its copies' log-probabilities, when known
    origin: str = "model"  # the first copy's Candidate.origin
    lookup: str | None = None  # why it is a lookup table (never verified), or None (`lookup_table`)

    @property
    def train_accuracy(self) -> float:
        return self.train_correct / self.train_total if self.train_total else 0.0

    @property
    def verified(self) -> bool:
        """Right on every train pair and not a lookup table of the train outputs."""
        return self.train_total > 0 and self.train_correct == self.train_total and self.lookup is None


def dedupe(candidates: Sequence[Candidate]) -> list[tuple[Candidate, list[str]]]:
    """First candidate of each (view, normalized source) group, with the ids of the later copies."""
    groups: dict[tuple[Augmentation, str], tuple[Candidate, list[str]]] = {}
    for c in candidates:
        key = (c.view, normalize_source(c.source))
        if key in groups:
            groups[key][1].append(c.program_id)
        else:
            groups[key] = (c, [])
    return list(groups.values())


def verify(task: Task, candidates: Sequence[Candidate], sandbox: Sandbox) -> list[ProgramResult]:
    """One ProgramResult per distinct candidate, in first-seen order."""
    unique = dedupe(candidates)
    views: dict[Augmentation, Task] = {}
    jobs = []
    for cand, _ in unique:
        view = views.get(cand.view) or views.setdefault(cand.view, cand.view.apply_task(task))
        grids = [p.input for p in view.train] + list(view.test_inputs)
        jobs.append((cand.program_id, cand.source, grids))
    records = sandbox.run_many(jobs)
    logprobs = {c.program_id: c.logprob for c in candidates if c.logprob is not None}
    return [
        _result(cand, dups, views[cand.view], rec, max((logprobs[i] for i in (cand.program_id, *dups) if i in logprobs), default=None))
        for (cand, dups), rec in zip(unique, records)
    ]


def _result(cand: Candidate, dups: list[str], view: Task, rec: RunRecord, logprob: float | None) -> ProgramResult:
    n_train = len(view.train)
    ran = list(rec.results[:n_train])
    ran += [GridResult(None, rec.error or "missing")] * (n_train - len(ran))  # a short reply: the rest did not run
    train_outputs = [None if r.output is None else _array(r.output) for r in ran]
    train_correct = sum(out is not None and np.array_equal(out, pair.output) for out, pair in zip(train_outputs, view.train))
    cells = [cell_accuracy(out, pair.output) for out, pair in zip(train_outputs, view.train)]
    tests = [None if r.output is None else cand.view.invert_grid(_array(r.output)) for r in rec.results[n_train:]]
    errors = Counter(r.error for r in rec.results if r.error is not None)
    return ProgramResult(
        cand.program_id, cand.view.name, cand.source, train_correct, n_train, tests, dict(errors),
        rec.seconds, rec.error, 1 + len(dups), tuple(dups), train_outputs, [r.error for r in ran],
        float(np.mean(cells)) if cells else 0.0, logprob, cand.origin,
        lookup_table(cand.source, view, [None if r.output is None else _array(r.output) for r in rec.results[n_train:]]),
    )


def lookup_table(source: str, view: Task, test_outputs: Sequence[np.ndarray | None]) -> str | None:
    """Why a program is a lookup table of the train outputs (None when it is not), in its view's frame.

    - "train output literal": its source holds a train output (more than one cell) as a nested list or
      tuple literal: it is right on that pair because it was told the answer, not because it found a rule;
    - "test output is train output k": it answers a test input with train pair k's output verbatim (more
      than one cell) and that test input is not pair k's input: outputs chosen by input, not computed.
    Only when no two train outputs are equal: where they repeat, the task is a choice among a few fixed
    outputs, which a real rule may spell out and a test answer may repeat. Single cells and single-colour
    grids are left alone too: a real rule may well name such an answer (a colour, a size) or return it.
    On the true answers, the rule flags 1 of 400 ARC-AGI-1 evaluation tasks (d5c634a2, whose test answer
    repeats a train output), none of the 400 training or 120 ARC-AGI-2 evaluation tasks.
    """
    train = view.train
    if len({(p.output.shape, p.output.tobytes()) for p in train}) < len(train):
        return None
    telling = [p.output.size > 1 and not (p.output == p.output.flat[0]).all() for p in train]
    outputs = [p.output for p, t in zip(train, telling) if t]
    if outputs:
        for grid in _grid_literals(source):
            if any(grid.shape == o.shape and np.array_equal(grid, o) for o in outputs):
                return "train output literal"
    for out, x in zip(test_outputs, view.test_inputs):
        for k, (p, t) in enumerate(zip(train, telling)):
            if t and out is not None and np.array_equal(out, p.output) and not np.array_equal(x, p.input):
                return f"test output is train output {k + 1}"
    return None


def _grid_literals(source: str) -> list[np.ndarray]:
    """Every rectangular nested list/tuple literal of ints 0..9 in `source` (none when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    grids = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.List, ast.Tuple)) or not node.elts or not all(isinstance(e, (ast.List, ast.Tuple)) for e in node.elts):
            continue
        rows = [[c.value for c in row.elts if isinstance(c, ast.Constant)] for row in node.elts]
        if all(len(r) == len(row.elts) and len(r) == len(rows[0]) for r, row in zip(rows, node.elts)) and rows[0] and all(
            type(v) is int and 0 <= v <= 9 for r in rows for v in r
        ):
            grids.append(np.array(rows, dtype=np.uint8))
    return grids


def cell_accuracy(output: np.ndarray | None, expected: np.ndarray) -> float:
    """The share of cells of `expected` that `output` gets right; 0 when it failed or has another shape."""
    if output is None or output.shape != expected.shape:
        return 0.0
    return float(np.mean(output == expected))


def _array(grid: Grid) -> np.ndarray:
    return np.array(grid, dtype=np.uint8)


def _same(output: Grid | None, expected: np.ndarray) -> bool:
    # `output` is a tuple of tuples of ints built by the sandbox from bytes, never a program's object.
    return output is not None and np.array_equal(_array(output), expected)


def pair_outcomes(task: Task, rec: RunRecord) -> list[dict[str, str]]:
    """Per grid of `task` (train pairs, then test inputs): 'correct', 'wrong', an error class, or
    'ran' for a test input whose output is unknown. For people debugging their programs."""
    n_train = len(task.train)
    expected = [p.output for p in task.train] + list(task.test_outputs or [None] * len(task.test_inputs))
    names = [f"train[{i}]" for i in range(n_train)] + [f"test[{i}]" for i in range(len(task.test_inputs))]
    rows = []
    for name, r, want in zip(names, rec.results, expected):
        if r.error is not None:
            outcome = r.error
        elif want is None:
            outcome = "ran"
        else:
            outcome = "correct" if _same(r.output, want) else "wrong"
        rows.append({"grid": name, "outcome": outcome})
    return rows
