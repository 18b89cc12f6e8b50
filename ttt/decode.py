"""Batched sampling with a shared prefill, many sequences per decode step, and early stops.

Why not `model.generate`: with `num_return_sequences=n` it prefills every prompt n times, and on a
CPU (and for long ARC prompts on a GPU too) the prefill is most of the cost: an 860-token prompt is
860 token-forwards, a 160-token program only 160 single-token steps. Here each prompt is prefilled
once, its KV cache is repeated for its n sequences, the sequences of several prompts decode together
(up to `max_rows` per step), a sequence leaves the batch the moment it is done (end of turn, or a
`StopRule` saying the answer is complete: the closing code fence, a grid's last cell), and the LM
head runs on the last position only.

Randomness comes from a local `torch.Generator` seeded by the caller: the process-global RNG is never
touched. Greedy decoding (temperature 0) decodes one sequence per prompt and repeats it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from ttt.nll import autocast_for, cache_kwargs, model_device, output_cache


@dataclass(frozen=True)
class Decoded:
    """One generated continuation."""

    ids: list[int]  # generated tokens, the end-of-turn token (when produced) included
    logprob: float  # sum over `ids` of the model's log-probability (temperature 1), for ranking
    stop: str  # "end" (end-of-turn token) | "rule" (the StopRule) | "length" | "time"


class StopRule(Protocol):
    """Says when a continuation's text holds a complete answer (then nothing more is generated)."""

    def done(self, text: str) -> bool: ...


class ProgramStop:
    """A program answer is complete at the fence that closes its first code block."""

    def done(self, text: str) -> bool:
        start = text.find("```")
        return start >= 0 and text.find("```", start + 3) >= 0


_HEADER = re.compile(r"\s*(\d+)x(\d+)\n")


class GridStop:
    """A grid answer (`augment.gridtext`: 'HxW' header, H rows of W digits) is complete when its last
    row has W characters; it is hopeless (stop too) as soon as the body breaks the header's shape."""

    def done(self, text: str) -> bool:
        m = _HEADER.match(text)
        if m is None:
            return len(text) > 8 and "\n" in text  # a first line that is no header: the parse will fail anyway
        h, w = int(m.group(1)), int(m.group(2))
        body = text[m.end():]
        need = h * w + h - 1
        if len(body) >= need:
            return True
        # every character so far must sit where the shape puts it (digits, newline after each W)
        return any((c != "\n") if (i + 1) % (w + 1) == 0 else not c.isdigit() for i, c in enumerate(body))


class TokenText:
    """Per-token text, decoded once per token id (stop rules read the running text)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        s = self.cache.get(token)
        if s is None:
            s = self.cache[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return s


def _filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (as transformers' TopPLogitsWarper): keep the smallest set of tokens whose
    probability reaches `top_p`, always at least the most likely one."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def forward_step(model: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
    """One forward of `ids` (B, T) after `cache` (None: a prefill): (last-position logits (B, V), the cache)."""
    with autocast_for(ids.device):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                    **cache_kwargs(model, cache))
    return out.logits[:, -1, :].float(), output_cache(out)


def prefill(model: Any, prompts: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Left-padded forward of `prompts`: (last-position logits (P, V), attention mask (P, L), KV cache)."""
    device = model_device(model)
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    logits, cache = forward_step(model, ids, mask, positions, None)
    return logits, mask, cache


@torch.no_grad()
def sample(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    end_ids: Sequence[int],
    pad: int,
    stop: StopRule | None = None,
    max_rows: int = 32,
    max_time: float | None = None,
) -> list[list[Decoded]]:
    """`n` continuations per prompt (greedy when `temperature` <= 0: one, repeated). Prompts go in
    groups of about `max_rows // n` (at least one), each group prefilled once and decoded together.
    `max_time` (seconds, for the whole call): a group not started gets empty continuations, a group
    running out keeps what it wrote (stop "time")."""
    greedy = temperature <= 0
    per_prompt = 1 if greedy else n
    group = max(1, max_rows // per_prompt)
    gen = torch.Generator(device=model_device(model)).manual_seed(seed)
    texts = TokenText(tokenizer)
    deadline = None if max_time is None else time.monotonic() + max_time
    was_training = model.training
    model.eval()
    out: list[list[Decoded]] = []
    try:
        for i in range(0, len(prompts), group):
            chunk = prompts[i : i + group]
            if deadline is not None and time.monotonic() >= deadline:
                out += [[Decoded([], 0.0, "time")] * per_prompt for _ in chunk]
                continue
            rows = _decode_group(model, chunk, per_prompt, max_new_tokens, temperature, top_p, gen, set(end_ids), pad,
                                 stop, texts, deadline)
            out += [rows[k * per_prompt : (k + 1) * per_prompt] for k in range(len(chunk))]
    finally:
        model.train(was_training)
    return [r * n if greedy else r for r in out]


def _decode_group(model, prompts, per_prompt, max_new_tokens, temperature, top_p, gen, end_ids, pad, stop, texts,
                  deadline) -> list[Decoded]:
    logits, mask, cache = prefill(model, prompts, pad)
    if per_prompt > 1:  # the prompt's cache, shared: each of its sequences continues from a copy
        cache.batch_repeat_interleave(per_prompt)
        logits = logits.repeat_interleave(per_prompt, dim=0)
        mask = mask.repeat_interleave(per_prompt, dim=0)
    n_rows = logits.shape[0]
    live = list(range(n_rows))  # row -> output index, for the rows still in the batch
    ids: list[list[int]] = [[] for _ in range(n_rows)]
    text = [""] * n_rows
    logp = [0.0] * n_rows
    stops = ["length"] * n_rows
    lengths = mask.sum(-1)  # real tokens per live row: the next position id
    for step in range(max_new_tokens):
        if deadline is not None and time.monotonic() >= deadline:
            for r in live:
                stops[r] = "time"
            break
        logprobs = logits.log_softmax(-1)
        if temperature <= 0:
            nxt = logits.argmax(-1)
        else:
            probs = _filter_top_p(logits / temperature, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        chosen = logprobs.gather(1, nxt[:, None]).squeeze(1).tolist()
        keep = []
        for k, (r, tok) in enumerate(zip(live, nxt.tolist())):
            ids[r].append(tok)
            logp[r] += chosen[k]
            if tok in end_ids:
                stops[r] = "end"
                continue
            if stop is not None:
                text[r] += texts(tok)
                if stop.done(text[r]):
                    stops[r] = "rule"
                    continue
            keep.append(k)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(live):  # finished rows leave the batch and its cache
            index = torch.tensor(keep, device=nxt.device)
            cache.batch_select_indices(index)
            nxt, mask, lengths = nxt[index], mask[index], lengths[index]
            live = [live[k] for k in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        logits, cache = forward_step(model, nxt[:, None], mask, lengths[:, None], cache)
        lengths = lengths + 1
    return [Decoded(ids[r], logp[r], stops[r]) for r in range(n_rows)]

