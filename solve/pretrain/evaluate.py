"""The prior's periodic evaluation on held-out synthetic tasks: do sampled programs parse, run, verify?
And the NLL of the held-out test output grids. The programs run in the real sandbox."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from augment.tasks import Task
from augment.transforms import Augmentation
from solve.sandbox.programs import extract_program
from solve.sandbox.verify import Candidate, verify
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item
from ttt.sample import sample_programs


def evaluate_prior(model: Any, tokenizer: Any, tasks: Sequence[Task], sandbox: Any, solve_cfg: Any, n_programs: int, seed: int) -> dict[str, Any]:
    """Rates over every sampled program of `tasks`: parsed (a `transform` was found), ran (no program-level
    error on any grid), verified (every train pair right); tasks with a verified program; grid NLL."""
    if not tasks:
        return {}
    sampled = parsed = ran = verified = 0
    solved_tasks = 0
    identity = Augmentation()
    for i, task in enumerate(tasks):
        texts = sample_programs(model, tokenizer, task, [identity], n_programs, solve_cfg, seed + i)
        sampled += len(texts)
        candidates = []
        for j, t in enumerate(texts):
            src = extract_program(t.text).source
            if src is not None:
                candidates.append(Candidate(f"p{j}", src))
        parsed += len(candidates)
        results = verify(task, candidates, sandbox) if candidates else []
        # verify dedupes identical programs: weigh each result by its copies so the rates are per sample
        ran += sum(r.copies for r in results if r.program_error is None)
        good = sum(r.copies for r in results if r.verified)
        verified += good
        solved_tasks += good > 0
    items = [grid_scoring_item(tokenizer, t.train, t.test_inputs[0], t.test_outputs[0]) for t in tasks if t.test_outputs is not None]
    nll = float(np.mean(target_nll(model, tokenizer, items))) if items else None
    rate = (lambda k: round(k / sampled, 4)) if sampled else (lambda k: None)
    return {
        "tasks": len(tasks), "programs": sampled, "parse_rate": rate(parsed), "run_rate": rate(ran),
        "verify_rate": rate(verified), "tasks_verified": solved_tasks, "grid_nll": None if nll is None else round(nll, 4),
    }
