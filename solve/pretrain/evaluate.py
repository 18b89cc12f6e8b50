"""The prior's periodic evaluation on held-out synthetic tasks: do sampled programs parse, run, verify?
And the NLL of the held-out test output grids. The programs run in the real sandbox."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from augment.tasks import Task
from augment.transforms import Augmentation
from solve.sandbox.programs import extract_program
from solve.sandbox.verify import Candidate, verify
from ttt.decoding.sample import sample_programs
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item


def evaluate_prior(model: Any, tokenizer: Any, tasks: Sequence[Task], sandbox: Any, solve_cfg: Any, n_programs: int, seed: int) -> dict[str, Any]:
    """Rates over every sampled program of `tasks`: parsed (a `transform` was found), ran (no program-level
    error on any grid), verified (every train pair right); tasks with a verified program; grid NLL."""
    counts = [task_counts(model, tokenizer, task, seed + i, sandbox, solve_cfg, n_programs) for i, task in enumerate(tasks)]
    return summarize(counts)


def task_counts(model: Any, tokenizer: Any, task: Task, seed: int, sandbox: Any, solve_cfg: Any, n_programs: int) -> dict[str, Any]:
    """One held-out task's counts (programs sampled / parsed / ran / verified) and its grid NLL (None without
    a test output): plain data, so ranks can evaluate their share of the tasks and `summarize` them together."""
    texts = sample_programs(model, tokenizer, task, [Augmentation()], n_programs, solve_cfg, seed)
    candidates = []
    for j, t in enumerate(texts):
        src = extract_program(t.text).source
        if src is not None:
            candidates.append(Candidate(f"p{j}", src))
    results = verify(task, candidates, sandbox) if candidates else []
    nll = None
    if task.test_outputs is not None:
        nll = float(target_nll(model, tokenizer, [grid_scoring_item(tokenizer, task.train, task.test_inputs[0], task.test_outputs[0])])[0])
    # verify dedupes identical programs: weigh each result by its copies so the rates are per sample
    return {
        "sampled": len(texts), "parsed": len(candidates), "ran": sum(r.copies for r in results if r.program_error is None),
        "verified": sum(r.copies for r in results if r.verified), "nll": nll,
    }


def summarize(counts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation row of `task_counts` of every held-out task ({} for none)."""
    if not counts:
        return {}
    sampled = sum(c["sampled"] for c in counts)
    rate = (lambda k: round(sum(c[k] for c in counts) / sampled, 4)) if sampled else (lambda k: None)
    nlls = [c["nll"] for c in counts if c["nll"] is not None]
    return {
        "tasks": len(counts), "programs": sampled, "parse_rate": rate("parsed"), "run_rate": rate("ran"),
        "verify_rate": rate("verified"), "tasks_verified": sum(c["verified"] > 0 for c in counts),
        "grid_nll": round(float(np.mean(nlls)), 4) if nlls else None,
    }
