"""Choose two attempts per test input from verified programs, partial programs and extra predictions.

Tiers, each filling the slots left by the ones before it, in the order the caller asks (each `solve.mode`'s order: solve.pipeline.modes):
- "verified": outputs of programs that reproduce every train pair, grouped by identical output, ranked by
  agreement: distinct programs giving it + distinct views they were written for (verification merges
  copies of one program in one view, so independent derivations and consistency under the task's
  symmetries count, not repetition); ties broken by the model's best log-probability of a program giving
  it (when known; known beats unknown), then votes (sum of `copies`: a program the model wrote twice
  counts twice), then the shortest program giving it, then first appearance;
- "partial": outputs of programs right on at least one train pair, ranked by best train accuracy, then
  votes, then shortest program, then first appearance;
- "extra": caller-ranked predictions per test input, `(grid, source_label, score)`, kept in given order.
Degenerate outputs are dropped from every tier: a copy of the test input unless some train pair maps a
grid to itself, and a single-color grid unless some train output is single-color. An output already
chosen is never chosen twice. Missing attempts are filled with placeholders (see
`solve.select.submission.placeholder_grids`: the test input, then [[0]]), marked as such in the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from augment.tasks import Task
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
) -> list[list[Attempt]]:
    """`attempts` Attempts for each test input of `task`, in test-input order."""
    unknown = set(order) - set(TIERS)
    if unknown:
        raise ValueError(f"unknown tiers {sorted(unknown)}; choose from {TIERS}")
    allow_identity = any(np.array_equal(p.input, p.output) for p in task.train)
    allow_constant = any(_constant(p.output) for p in task.train)
    chosen = []
    for i, test_input in enumerate(task.test_inputs):
        tiers = {
            "verified": lambda i=i: _program_candidates(results, i, verified=True),
            "partial": lambda i=i: _program_candidates(results, i, verified=False),
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


def _program_candidates(results: Sequence[ProgramResult], i: int, verified: bool) -> list[tuple[np.ndarray, dict]]:
    groups: dict[tuple, dict] = {}
    for rank, r in enumerate(results):
        if r.verified != verified or r.train_correct == 0 or i >= len(r.test_outputs) or r.test_outputs[i] is None:
            continue
        grid = r.test_outputs[i]
        key = (grid.shape, grid.tobytes())
        g = groups.setdefault(
            key, {"grid": grid, "votes": 0, "acc": 0.0, "short": 10**9, "first": rank, "ids": [], "views": set(), "logprob": None}
        )
        g["votes"] += r.copies
        g["acc"] = max(g["acc"], r.train_accuracy)
        g["short"] = min(g["short"], len(r.source))
        g["ids"].append(r.program_id)
        g["views"].add(r.view_name)
        if r.logprob is not None:
            g["logprob"] = r.logprob if g["logprob"] is None else max(g["logprob"], r.logprob)
    if verified:
        ranked = sorted(groups.values(), key=lambda g: (-agreement(g), -_known(g["logprob"]), -g["votes"], g["short"], g["first"]))
    else:
        ranked = sorted(groups.values(), key=lambda g: (-g["acc"], -g["votes"], g["short"], g["first"]))
    tier = "verified" if verified else "partial"
    return [(g["grid"], _program_reason(tier, g)) for g in ranked]


def agreement(group: dict) -> int:
    """How many distinct programs and distinct views agree on an output: the verified tier's weight."""
    return len(group["ids"]) + len(group["views"])


def _known(logprob: float | None) -> float:
    return -math.inf if logprob is None else logprob


def _program_reason(tier: str, g: dict) -> dict:
    return {
        "tier": tier, "votes": g["votes"], "train_accuracy": round(g["acc"], 4),
        "programs": g["ids"][:10], "views": sorted(g["views"])[:10], "shortest_source_chars": g["short"],
        "agreement": agreement(g), "logprob": None if g["logprob"] is None else round(g["logprob"], 4),
    }


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
