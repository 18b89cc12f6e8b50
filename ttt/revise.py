"""Sampling revisions of programs for test-time search: refinement (one program and where it is wrong)
and crossover (two programs that are right on different pairs).

The prompts are `ttt.prompts.fit_revision_prompt`, in the frame of the view the programs were written
for; generation is `ttt.sample.generate_scored` with the program sampler's settings
(`Decoding.of(cfg, ProgramStop())`, as `sample_programs`), batched over every request at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from augment.tasks import Pair
from augment.transforms import Augmentation
from ttt.decode import ProgramStop
from ttt.prompts import Attempted, fit_revision_prompt
from ttt.sample import Decoding, generate_scored


@dataclass(frozen=True)
class RevisionRequest:
    """One revision prompt: the view's train pairs and test inputs, and the programs to show."""

    view: Augmentation
    context: tuple[Pair, ...]
    test_inputs: tuple[np.ndarray, ...]
    attempts: tuple[Attempted, ...]  # one: refinement; two: crossover
    parents: tuple[str, ...]  # the shown programs' ids

    @property
    def kind(self) -> str:
        return "refine" if len(self.attempts) == 1 else "crossover"


@dataclass(frozen=True)
class RevisionText:
    request: RevisionRequest
    text: str
    shortened: bool  # the prompt lost pairs to fit max_seq_len
    logprob: float | None = None  # the model's summed log-probability of the text, when the decoder gives it


def sample_revisions(
    model: Any,
    tokenizer: Any,
    requests: Sequence[RevisionRequest],
    per_request: int,
    cfg: Any,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
    max_seq_len: int | None = None,
) -> list[RevisionText]:
    """`per_request` revisions per request (the solve section's program sampling settings: token cap,
    temperature, top-p, sampler), in request order."""
    if per_request <= 0 or not requests:
        return []
    cap = cfg.program_max_new_tokens
    prompts = [fit_revision_prompt(tokenizer, r.context, r.test_inputs, r.attempts, cap, max_seq_len) for r in requests]
    texts = generate_scored(
        model, tokenizer, [p.ids for p in prompts], per_request, cap, cfg.temperature, cfg.top_p, cfg.batch_size, seed, max_time, ranks,
        Decoding.of(cfg, ProgramStop(), cfg.program_draft),
    )
    return [RevisionText(r, t, p.shortened, lp) for r, p, ts in zip(requests, prompts, texts) for t, lp in ts]
