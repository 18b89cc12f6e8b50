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

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from ttt.config import KV_TOKENS, PREFILL_TOKENS
from ttt.decoding.decode_speed import grow_in_place, small_rows_linears
from ttt.memory import rows_for_kv
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


# Tokens looked at first by the nucleus: a trained model's top-p (0.95) set is almost always far smaller.
NUCLEUS_FIRST = 64


def sample_nucleus(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """One token per row from softmax(logits / temperature) restricted to the top-p nucleus: the same
    distribution as `_filter_top_p` + multinomial over the vocabulary, without sorting the vocabulary
    and drawing over all of it every step (both grow with the vocabulary: 49k tokens, ~25 ms a step of
    8 rows on 2 cores). The nucleus is found within the `NUCLEUS_FIRST` most likely tokens; a row
    whose nucleus is wider sends the step to the full sort."""
    probs = (logits / temperature).softmax(-1)
    k = min(NUCLEUS_FIRST, probs.shape[-1])
    top, index = probs.topk(k, dim=-1)  # descending
    before = top.cumsum(-1) - top  # mass ranked strictly above each token
    if top_p < 1.0 and bool((before[:, -1] + top[:, -1] >= top_p).all()):
        keep = before < top_p  # the smallest set reaching top_p (TopPLogitsWarper's rule), the first always
        pick = torch.multinomial(top.masked_fill(~keep, 0.0), 1, generator=gen)
        return index.gather(1, pick).squeeze(1)
    full = _filter_top_p(logits / temperature, top_p).softmax(-1)
    return torch.multinomial(full, 1, generator=gen).squeeze(1)


def forward_step(model: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
    """One forward of `ids` (B, T) after `cache` (None: a prefill): (last-position logits (B, V), the cache)."""
    with autocast_for(ids.device):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                    **cache_kwargs(model, cache))
    return out.logits[:, -1, :].float(), output_cache(out)


def forward_block(model: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
    """A forward of `ids` (B, T) after `cache`, keeping the logits of all T positions: ((B, T, V), the cache)."""
    with autocast_for(ids.device):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=ids.shape[1],
                    **cache_kwargs(model, cache))
    return out.logits.float(), output_cache(out)


def prefill(model: Any, prompts: Sequence[Sequence[int]], pad: int, max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Left-padded forward of `prompts`: (last-position logits (P, V), attention mask (P, L), KV cache).
    `max_tokens`: the forward runs in pieces of at most that many tokens (P x positions), each after
    the cache of the ones before: activations are a piece's, not the whole prefill's (8 views of an 8k
    prompt are 64k token-activations at once)."""
    device = model_device(model)
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    step = width if max_tokens is None else max(1, max_tokens // len(prompts))
    cache = None
    for a in range(0, width, step):
        b = min(width, a + step)
        logits, cache = forward_step(model, ids[:, a:b], mask[:, :b], positions[:, a:b], cache)
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
    fast_steps: bool = True,
    draft: Sequence[int] = (),
    kv_tokens: int = KV_TOKENS,
    prefill_tokens: int = PREFILL_TOKENS,
) -> list[list[Decoded]]:
    """`n` continuations per prompt (greedy when `temperature` <= 0: one, repeated). Prompts go in
    groups of about `max_rows // n` (at least one), each group prefilled once and decoded together.
    `max_time` (seconds, for the whole call): a group not started gets empty continuations, a group
    running out keeps what it wrote (stop "time"). `fast_steps`: `ttt.decoding.decode_speed`'s few-row matmuls
    (CPU) and in-place KV cache; False keeps transformers' own, for comparisons. `draft`: tokens every
    continuation is expected to start with (a program's opening lines), checked in one forward per
    prompt instead of one step per token, accepted or not as in speculative sampling (`accept_draft`):
    the continuations are distributed exactly as without it.

    Memory: rows per decode step are also capped by `kv_tokens` KV-cache tokens (rows x (longest prompt +
    `max_new_tokens`)) and, on CUDA, by free memory (`ttt.memory.rows_for_kv`); prefills run in pieces
    of `prefill_tokens`. A group that runs out of device memory anyway is decoded again with half the rows
    (a prompt's `n` sequences then in several groups, each with its own prefill)."""
    greedy = temperature <= 0
    per_prompt = 1 if greedy else n
    longest = max((len(p) for p in prompts), default=0)
    rows = rows_for_kv(model, longest + max_new_tokens, max_rows, kv_tokens)
    gen = torch.Generator(device=model_device(model)).manual_seed(seed)
    texts = TokenText(tokenizer)
    deadline = None if max_time is None else time.monotonic() + max_time
    was_training = model.training
    model.eval()
    try:
        with small_rows_linears(model) if fast_steps else contextlib.nullcontext():
            out = _decode_groups(model, prompts, rows, per_prompt, max_new_tokens, temperature, top_p, gen, set(end_ids), pad,
                                 stop, texts, deadline, fast_steps, draft, prefill_tokens)
    finally:
        model.train(was_training)
    return [r * n if greedy else r for r in out]


def _decode_groups(model, prompts, rows, per_prompt, max_new_tokens, temperature, top_p, gen, end_ids, pad, stop, texts,
                   deadline, fast_steps, draft, prefill_tokens) -> list[list[Decoded]]:
    out: list[list[Decoded]] = []
    i = 0
    while i < len(prompts):
        chunk = prompts[i : i + max(1, rows // per_prompt)]
        if deadline is not None and time.monotonic() >= deadline:
            out += [[Decoded([], 0.0, "time")] * per_prompt for _ in chunk]
            i += len(chunk)
            continue
        try:
            got: list[Decoded] = []
            for take in _pieces(per_prompt, rows):  # more sequences than rows: the prompt's in several groups
                got += _decode_group(model, chunk, take, max_new_tokens, temperature, top_p, gen, end_ids, pad, stop, texts,
                                     deadline, fast_steps, draft, prefill_tokens)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
            got = []
            rows //= 2
            _free(model)
            continue
        out += [got[k * per_prompt : (k + 1) * per_prompt] for k in range(len(chunk))]
        i += len(chunk)
    return out


def _pieces(n: int, rows: int) -> list[int]:
    """`n` sequences in groups of at most `rows`."""
    return [min(rows, n - a) for a in range(0, n, rows)] if n > rows else [n]


def _free(model: Any) -> None:
    import gc

    gc.collect()
    if model_device(model).type == "cuda":
        torch.cuda.empty_cache()


def _decode_group(model, prompts, per_prompt, max_new_tokens, temperature, top_p, gen, end_ids, pad, stop, texts,
                  deadline, fast_steps, draft, prefill_tokens=None) -> list[Decoded]:
    logits, mask, cache = prefill(model, prompts, pad, prefill_tokens)
    draft = list(draft)[: max(0, max_new_tokens - 1)]
    if draft:  # the expected opening, one forward for every prompt: the distribution before each of its tokens
        k = len(draft)
        positions = mask.sum(-1, keepdim=True) + torch.arange(k, device=mask.device)
        mask = torch.cat([mask, mask.new_ones((len(prompts), k))], dim=1)
        block, cache = forward_block(model, torch.tensor([draft] * len(prompts), device=mask.device), mask, positions, cache)
        logits = torch.cat([logits[:, None], block], dim=1)  # (P, k + 1, V)
        # accepted per prompt's distribution once, for its per_prompt rows (the nucleus sorts the vocabulary)
        pending, pending_logp = accept_draft(logits, draft, temperature, top_p, gen, per_prompt)
        del logits, block
    if per_prompt > 1:  # the prompt's cache, shared: each of its sequences continues from a copy
        cache.batch_repeat_interleave(per_prompt)
        mask = mask.repeat_interleave(per_prompt, dim=0)
        if not draft:
            logits = logits.repeat_interleave(per_prompt, dim=0)
    if fast_steps:
        grow_in_place(cache, max_new_tokens)
    n_rows = mask.shape[0]
    live = list(range(n_rows))  # row -> output index, for the rows still in the batch
    ids: list[list[int]] = [[] for _ in range(n_rows)]
    text = [""] * n_rows
    logp = [0.0] * n_rows
    stops = ["length"] * n_rows
    if draft:
        for r, toks in enumerate(pending):  # the draft slots a row rejected stay in the cache, masked out
            mask[r, mask.shape[1] - len(draft) + len(toks) - 1 :] = 0
    else:
        pending, pending_logp = _choose(logits, temperature, top_p, gen)
    lengths = mask.sum(-1)  # real tokens per live row: the next position id
    for step in range(max_new_tokens):
        keep = []
        for k, r in enumerate(live):
            for tok, lp in zip(pending[k], pending_logp[k]):
                ids[r].append(tok)
                logp[r] += lp
                if tok in end_ids:
                    stops[r] = "end"
                    break
                if stop is not None:
                    text[r] += texts(tok)
                    if stop.done(text[r]):
                        stops[r] = "rule"
                        break
                if len(ids[r]) >= max_new_tokens:
                    break
            else:
                keep.append(k)
        keep = [k for k in keep if len(ids[live[k]]) < max_new_tokens]
        if not keep:
            break
        if deadline is not None and time.monotonic() >= deadline:
            for k in keep:
                stops[live[k]] = "time"
            break
        nxt = torch.tensor([pending[k][-1] for k in keep], device=mask.device)
        if len(keep) < len(live):  # finished rows leave the batch and its cache
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask, lengths = mask[index], lengths[index]
            live = [live[k] for k in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        logits, cache = forward_step(model, nxt[:, None], mask, lengths[:, None], cache)
        lengths = lengths + 1
        pending, pending_logp = _choose(logits, temperature, top_p, gen)
    return [Decoded(ids[r], logp[r], stops[r]) for r in range(n_rows)]


def _choose(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> tuple[list[list[int]], list[list[float]]]:
    """One token per row (greedy or nucleus) and its log-probability at temperature 1, as 1-token lists."""
    nxt = logits.argmax(-1) if temperature <= 0 else sample_nucleus(logits, temperature, top_p, gen)
    chosen = logits.log_softmax(-1).gather(1, nxt[:, None]).squeeze(1)
    return [[t] for t in nxt.tolist()], [[c] for c in chosen.tolist()]


def nucleus_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution `sample_nucleus` draws from, over the whole vocabulary (rows of `logits`)."""
    return _filter_top_p(logits / temperature, top_p).softmax(-1)


def accept_draft(
    logits: torch.Tensor, draft: Sequence[int], temperature: float, top_p: float, gen: torch.Generator, repeats: int = 1
) -> tuple[list[list[int]], list[list[float]]]:
    """Speculative sampling with a fixed draft (Leviathan et al. 2023, with a draft model that always
    proposes `draft`). `logits` (P, k + 1, V): the distribution before each of the k draft tokens and
    after the last, for `repeats` rows each (rows p * repeats ... (p + 1) * repeats - 1: the sequences of
    one prompt share it, so its nucleus is found once). Per row: draft token i is accepted with
    probability q_i(d_i); at the first rejection the token is drawn from q_i without d_i, renormalised;
    when all are accepted, one more is drawn from q_k. The tokens come out distributed exactly as
    sampling them one by one (greedy: the draft is kept while it is the argmax). Returns per row the
    tokens (accepted draft + one) and their log-probabilities at temperature 1."""
    prompts, k = logits.shape[0], len(draft)
    rows = prompts * repeats
    d = torch.tensor(list(draft), device=logits.device)
    if temperature <= 0:
        best = logits.argmax(-1).repeat_interleave(repeats, 0)  # (R, k + 1)
        accepted = best[:, :k] == d
        pick = best
    else:
        q = nucleus_probs(logits.reshape(prompts * (k + 1), -1), temperature, top_p).reshape(prompts, k + 1, -1)
        q_d = q[:, :k].gather(2, d.expand(prompts, k)[:, :, None]).squeeze(2).repeat_interleave(repeats, 0)
        accepted = torch.rand(rows, k, generator=gen, device=logits.device) < q_d
        residual = q
        residual[:, :k].scatter_(2, d.expand(prompts, k)[:, :, None], 0.0)  # q_i without d_i (renormalised by multinomial)
        residual[residual.sum(-1) <= 0] = 1.0  # a position where d_i had all the mass is never rejected: any row will do
        draws = torch.multinomial(residual.reshape(prompts * (k + 1), -1), repeats, replacement=True, generator=gen)
        pick = draws.reshape(prompts, k + 1, repeats).permute(0, 2, 1).reshape(rows, k + 1)
        del q, residual
    n_ok = torch.where(accepted.all(1), k, (~accepted).int().argmax(1))  # accepted draft tokens per row
    logprobs = logits.log_softmax(-1)
    tokens, lps = [], []
    for r, a in enumerate(n_ok.tolist()):
        toks = list(draft[:a]) + [int(pick[r, a])]
        tokens.append(toks)
        lps.append(logprobs[r // repeats, torch.arange(a + 1), torch.tensor(toks)].tolist())
    return tokens, lps
