"""The model's log-probability of whole programs under a task's program prompt, for ranking programs
that verify but disagree (solve.pipeline.program_rank).

A program is scored as the answer of the prompt it would have been sampled from (`ttt.prompts`: the
view's train pairs and test inputs, kind "program"), so every program of one view shares one prompt:
`ttt.nll.target_nll` runs it once and scores every program against its KV cache, the way grid
candidates are scored. The prompt loses pairs from the start, once per view, so that it and the longest
of the view's programs fit `max_seq_len`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from augment.tasks import Pair
from ttt.nll import target_nll
from ttt.prompts import end_ids, fit_prompt, program_answer, prompt_text, split_ids, task_text


@dataclass(frozen=True)
class ProgramPrompt:
    """One view's prompt and the programs to score under it."""

    pairs: tuple[Pair, ...]
    test_inputs: tuple[np.ndarray, ...]
    sources: tuple[str, ...]


def program_logprobs(
    model: Any, tokenizer: Any, prompts: Sequence[ProgramPrompt], max_seq_len: int | None = None, ranks: Any = None
) -> list[list[float]]:
    """Per prompt, per source: log p(program answer | prompt), summed over the answer's tokens (the
    end-of-turn token included)."""
    items: list[tuple[list[int], list[int]]] = []
    for p in prompts:
        if not p.sources:
            continue
        answers = [program_answer(src) for src in p.sources]
        longest = max(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers) + len(end_ids(tokenizer))
        kept = fit_prompt(tokenizer, "program", p.pairs, None, p.test_inputs, longest, max_seq_len).n_context
        text = prompt_text(tokenizer, "program", task_text(p.pairs[len(p.pairs) - kept :], None, p.test_inputs))
        items += [split_ids(tokenizer, text, a) for a in answers]
    nll = iter(target_nll(model, tokenizer, items, reduction="sum", ranks=ranks))
    return [[-next(nll) for _ in p.sources] for p in prompts]
