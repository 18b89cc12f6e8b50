"""Sampling revisions of programs for test-time search: refinement (one program and where it is wrong)
and crossover (two programs that are right on different pairs).

The prompts are `ttt.prompts.fit_revision_prompt`, in the frame of the view the programs were written
for; generation is `ttt.decoding.sample.generate_scored` with the program sampler's settings
(`Decoding.of(cfg, ProgramStop())`, as `sample_programs`), batched over every request asking for as
many revisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from augment.tasks import Pair
from augment.transforms import Augmentation
from ttt.decoding.decode import ProgramStop
from ttt.decoding.sample import Decoding, generate_scored
from ttt.prompts import Attempted, fit_revision_prompt


@dataclass(frozen=True)
class RevisionRequest:
    """One revision prompt: the view's train pairs and the programs to show (no test inputs: a revision
    is judged on the pairs)."""

    view: Augmentation
    context: tuple[Pair, ...]
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
    per_request: int | Sequence[int],
    cfg: Any,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
    max_seq_len: int | None = None,
) -> list[RevisionText]:
    """`per_request` revisions per request (the solve section's program sampling settings: token cap,
    temperature, top-p, sampler), in request order. An int per request (a sequence) asks for that many
    of each (a request given 0 is skipped): what `solve.pipeline.search` resamples after rejecting
    copies of the parents."""
    counts = [per_request] * len(requests) if isinstance(per_request, int) else list(per_request)
    if len(counts) != len(requests):
        raise ValueError(f"{len(counts)} sample counts for {len(requests)} revision requests")
    cap = cfg.program_max_new_tokens
    out: list[RevisionText] = []
    # generate_scored draws the same number per prompt: one call per distinct count, in request order after.
    for k, n in enumerate(sorted({c for c in counts if c > 0})):
        todo = [r for r, c in zip(requests, counts) if c == n]
        prompts = [fit_revision_prompt(tokenizer, r.context, r.attempts, cap, max_seq_len) for r in todo]
        texts = generate_scored(
            model, tokenizer, [p.ids for p in prompts], n, cap, cfg.temperature, cfg.top_p, cfg.batch_size, seed + k, max_time, ranks,
            Decoding.of(cfg, ProgramStop(), cfg.program_draft),
        )
        out += [RevisionText(r, t, p.shortened, lp) for r, p, ts in zip(todo, prompts, texts) for t, lp in ts]
    position = {id(r): k for k, r in enumerate(requests)}
    return sorted(out, key=lambda t: position[id(t.request)])
