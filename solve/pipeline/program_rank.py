"""The vote's last tie-break for verified programs that disagree: the adapted model's log-probability of
each program under the task's program prompt (`ttt.program_scores`).

It costs model time, so it runs only when verified programs give different outputs for some test input,
on at most PER_OUTPUT programs per disagreeing output (the shortest, which the vote prefers anyway) and
MAX_SCORED in all; never without a model, under data-parallel ranks (only rank 0 holds the programs),
or past the task's deadline. The vote (`solve.select.vote`, `program_scores`) uses it after weight and
length and records it in its reason (`program_logprob`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from augment.tasks import Task
from augment.transforms import Augmentation
from solve.sandbox.programs import normalize_source
from solve.sandbox.verify import ProgramResult

PER_OUTPUT = 4  # programs scored per distinct verified output of a disagreeing test input
MAX_SCORED = 32  # programs scored per task


def disagreeing(results: Sequence[ProgramResult], n_tests: int) -> list[ProgramResult]:
    """The verified programs worth scoring: for each test input on which verified programs give more than
    one output, the PER_OUTPUT shortest programs of each output (first appearance breaks ties), at most
    MAX_SCORED in all; [] when they all agree."""
    verified = [r for r in results if r.verified]
    length = {r.program_id: len(normalize_source(r.source)) for r in verified}
    chosen: dict[str, ProgramResult] = {}
    for i in range(n_tests):
        groups: dict[tuple[Any, ...], list[ProgramResult]] = {}
        for r in verified:
            out = r.test_outputs[i] if i < len(r.test_outputs) else None
            if out is not None:
                groups.setdefault((out.shape, out.tobytes()), []).append(r)
        if len(groups) < 2:
            continue
        for members in groups.values():
            for r in sorted(members, key=lambda r: length[r.program_id])[:PER_OUTPUT]:
                chosen.setdefault(r.program_id, r)
    return list(chosen.values())[:MAX_SCORED]


def score_programs(
    model: Any, tokenizer: Any, task: Task, programs: Sequence[ProgramResult], views: Mapping[str, Augmentation],
    max_seq_len: int | None = None,
) -> dict[str, float]:
    """Program id -> log-probability of its source under its own view's program prompt (one prompt per view)."""
    from ttt.program_scores import ProgramPrompt, program_logprobs

    by_view: dict[str, list[ProgramResult]] = {}
    for r in programs:
        if r.view_name not in views:
            raise ValueError(f"program {r.program_id} was written for view {r.view_name!r}, which is not among {sorted(views)}")
        by_view.setdefault(r.view_name, []).append(r)
    prompts, order = [], []
    for name, members in by_view.items():
        vt = views[name].apply_task(task)
        prompts.append(ProgramPrompt(vt.train, vt.test_inputs, tuple(r.source for r in members)))
        order.append(members)
    scores = program_logprobs(model, tokenizer, prompts, max_seq_len)
    return {r.program_id: lp for members, lps in zip(order, scores) for r, lp in zip(members, lps)}


def rank_scores(s: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """(program id -> log-probability, the record's counts) for a task's state (solve.pipeline.stages
    TaskState) just before the vote: scores only when verified programs disagree (else ({}, {})) and a
    model is here."""
    programs = disagreeing(s.program_results, len(s.task.test_inputs))
    if not programs:
        return {}, {}
    if s.engine is None:
        return {}, {"scored": 0, "skipped": "no model"}
    if s.ranks is not None and s.ranks.world > 1:
        return {}, {"scored": 0, "skipped": "data-parallel ranks"}
    if s.deadline_hit():
        return {}, {"scored": 0, "skipped": "deadline"}
    views = {"identity": Augmentation(), **{v.name: v for v, _ in s.programs}, **{v.name: v for v in s.views}}
    scores = score_programs(s.engine.model, s.engine.tokenizer, s.task, programs, views, s.cfg.train.max_seq_len)
    return scores, {"scored": len(scores)}
