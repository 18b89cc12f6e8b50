"""Choose two attempts per test input from verified programs, partial programs and extra predictions.

Tiers, each filling the slots left by the ones before it, in the order the caller asks (each `solve.mode`'s order: solve.pipeline.modes):
- "verified": outputs of programs that reproduce every train pair (lookup tables never do:
  `solve.sandbox.verify.lookup_table`), grouped by identical output, ranked by weight: how often the
  output was produced plus the distinct views it was produced under. "Produced" counts sampled texts
  (`copies`: verification merges renamed copies of one program in one view, so a program written twice
  counts twice whatever its variable names) and, for programs of the DSL search (origin "dsl"), which
  enumerates equivalent compositions, distinct behaviours only. Ties go to the shortest program (its
  normalized source), then to the model's log-probability of the program under the task's program
  prompt (`program_scores`, given only when verified programs disagree: `solve.pipeline.program_rank`;
  known beats unknown), then to first appearance;
- "partial": outputs of programs right on at least one train pair, lookup tables last, ranked by best
  train accuracy, then votes, then shortest program, then first appearance;
- "extra": caller-ranked predictions per test input, `(grid, source_label, score)`, kept in given order.
Degenerate outputs are dropped from every tier: a copy of the test input unless some train pair maps a
grid to itself, and a single-color grid unless some train output is single-color. An output already
chosen is never chosen twice. Missing attempts are filled with placeholders (see
`solve.select.submission.placeholder_grids`: the test input, then [[0]]), marked as such in the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from augment.tasks import Task
from solve.sandbox.programs import normalize_source
from solve.sandbox.verify import ProgramResult
from solve.select.submission import placeholder_grids

TIERS = ("verified", "partial", "extra")
Extra = tuple[np.ndarray, str, float]


@dataclass
class Attempt:
    grid: np.ndarray
    reason: dict[str, Any]  # JSON-able: tier and the evidence for choosing it


def choose_attempts(
    task: Task,
    results: Sequence[ProgramResult],
    extras: Sequence[Sequence[Extra]] | None = None,
    order: Sequence[str] = TIERS,
    attempts: int = 2,
    program_scores: Mapping[str, float] | None = None,
) -> list[list[Attempt]]:
    """`attempts` Attempts for each test input of `task`, in test-input order. `program_scores`:
    program id -> the model's log-probability of the program under the task's program prompt (the
    verified tier's last tie-break; None or missing ids: unknown)."""
    unknown = set(order) - set(TIERS)
    if unknown:
        raise ValueError(f"unknown tiers {sorted(unknown)}; choose from {TIERS}")
    allow_identity = any(np.array_equal(p.input, p.output) for p in task.train)
    allow_constant = any(_constant(p.output) for p in task.train)
    scores = dict(program_scores or {})
    lengths: dict[str, int] = {}  # program id -> normalized source length, computed once per program
    chosen = []
    for i, test_input in enumerate(task.test_inputs):
        tiers = {
            "verified": lambda i=i: _program_candidates(results, i, True, scores, lengths),
            "partial": lambda i=i: _program_candidates(results, i, False, scores, lengths),
            "extra": lambda i=i: _extra_candidates(extras[i] if extras and i < len(extras) else ()),
        }
        picks: list[Attempt] = []
        for tier in order:
            for grid, reason in tiers[tier]():
                if len(picks) == attempts:
                    break
                if _degenerate(grid, test_input, allow_identity, allow_constant) or _taken(grid, picks):
                    continue
                picks.append(Attempt(grid, reason))
        for kind, grid in placeholder_grids(test_input):
            if len(picks) == attempts:
                break
            if not _taken(grid, picks):
                picks.append(Attempt(grid, {"tier": "placeholder", "kind": kind}))
        chosen.append(picks)
    return chosen


def _program_candidates(
    results: Sequence[ProgramResult], i: int, verified: bool, scores: Mapping[str, float], lengths: dict[str, int]
) -> list[tuple[np.ndarray, dict]]:
    groups: dict[tuple, dict] = {}
    for rank, r in enumerate(results):
        if r.verified != verified or r.train_correct == 0 or i >= len(r.test_outputs) or r.test_outputs[i] is None:
            continue
        grid = r.test_outputs[i]
        key = (grid.shape, grid.tobytes())
        g = groups.setdefault(key, {
            "grid": grid, "votes": 0, "acc": 0.0, "short": 10**9, "first": rank, "ids": [], "views": set(), "logprob": None,
            "written": 0, "dsl": set(), "scored": None, "lookup": True,
        })
        g["votes"] += r.copies
        if r.origin == "dsl":
            g["dsl"].add(tuple(None if o is None else (o.shape, o.tobytes()) for o in r.test_outputs))
        else:
            g["written"] += r.copies
        g["acc"] = max(g["acc"], r.train_accuracy)
        if r.program_id not in lengths:
            lengths[r.program_id] = len(normalize_source(r.source))
        g["short"] = min(g["short"], lengths[r.program_id])
        g["ids"].append(r.program_id)
        g["views"].add(r.view_name)
        g["lookup"] = g["lookup"] and r.lookup is not None
        if r.logprob is not None:
            g["logprob"] = r.logprob if g["logprob"] is None else max(g["logprob"], r.logprob)
        if r.program_id in scores:
            g["scored"] = scores[r.program_id] if g["scored"] is None else max(g["scored"], scores[r.program_id])
    if verified:
        ranked = sorted(groups.values(), key=lambda g: (-weight(g), g["short"], -_known(g["scored"]), g["first"]))
    else:
        ranked = sorted(groups.values(), key=lambda g: (g["lookup"], -g["acc"], -g["votes"], g["short"], g["first"]))
    tier = "verified" if verified else "partial"
    return [(g["grid"], _program_reason(tier, g)) for g in ranked]


def produced(group: dict) -> int:
    """How often the group's output was produced: texts (copies included) of programs the model wrote,
    plus one per distinct behaviour (outputs on every test input) of the DSL search's programs."""
    return group["written"] + len(group["dsl"])


def weight(group: dict) -> int:
    """The verified tier's weight: how often the output was produced + the distinct views producing it."""
    return produced(group) + len(group["views"])


def _known(logprob: float | None) -> float:
    return -math.inf if logprob is None else logprob


def _program_reason(tier: str, g: dict) -> dict:
    reason = {
        "tier": tier, "votes": g["votes"], "train_accuracy": round(g["acc"], 4),
        "programs": g["ids"][:10], "views": sorted(g["views"])[:10], "shortest_source_chars": g["short"],
        "agreement": weight(g), "produced": produced(g), "logprob": None if g["logprob"] is None else round(g["logprob"], 4),
    }
    if g["scored"] is not None:
        reason["program_logprob"] = round(g["scored"], 4)  # under the task's program prompt (program_scores)
    if g["lookup"]:
        reason["lookup"] = True
    return reason


def _extra_candidates(extras: Sequence[Extra]) -> list[tuple[np.ndarray, dict]]:
    return [
        (np.asarray(grid, dtype=np.uint8), {"tier": "extra", "source": label, "score": float(score), "rank": k})
        for k, (grid, label, score) in enumerate(extras)
    ]


def _constant(grid: np.ndarray) -> bool:
    return bool((grid == grid.flat[0]).all())


def _degenerate(grid: np.ndarray, test_input: np.ndarray, allow_identity: bool, allow_constant: bool) -> bool:
    if not allow_identity and np.array_equal(grid, test_input):
        return True
    return not allow_constant and _constant(grid)


def _taken(grid: np.ndarray, picks: list[Attempt]) -> bool:
    return any(np.array_equal(grid, p.grid) for p in picks)
