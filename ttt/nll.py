"""Per-token negative log-likelihood of answer tokens: the one loss used by training and scoring.

Rows are right-padded (causal attention never looks at the padding after a row's end) and the LM
head runs only at the positions that predict an answer token, in chunks: with a 49k vocabulary the
head is a quarter of SmolLM2's compute per token, answers are a small part of a prompt, and at Qwen's
152k vocabulary whole-batch fp32 logits would be gigabytes (`head_nll`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import torch
import torch.nn.functional as F

from ttt.prompts import IGNORE, pad_id


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L), 1 = real token
    labels: torch.Tensor  # (B, L), IGNORE outside answers
    n_tokens: int  # real tokens
    n_answer: int  # tokens that carry loss

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.n_tokens, self.n_answer)


def collate(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Batch:
    """(input_ids, labels) rows -> one right-padded batch."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        n = len(row_ids)
        ids[i, :n] = torch.as_tensor(row_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.as_tensor(row_labels)
    n_answer = int((labels[:, 1:] != IGNORE).sum())  # the first token is never predicted
    return Batch(ids, mask, labels, int(mask.sum()), n_answer)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU (LoRA weights stay fp32); nothing on CPU, where bf16 matmuls are slow."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Logits per LM-head chunk of the loss (32 MB in fp32): the loss's transient memory is a few chunks, whatever the
# answer tokens x vocabulary (one 8k-token micro-batch of answers x Qwen's 152k vocabulary in fp32 is 5 GB).
LOSS_CHUNK_LOGITS = 2**23


def answer_token_nll(model: Any, batch: Batch, chunk_logits: int = LOSS_CHUNK_LOGITS) -> tuple[torch.Tensor, torch.Tensor]:
    """(nll, mask), both (B, L - 1): NLL of the token each position predicts, 0 where it carries no loss.

    The LM head runs at labelled positions only (not at every row's copy of the union of positions), in
    chunks of `chunk_logits` logits; while training each chunk is recomputed in backward instead of kept,
    so neither pass holds more than a chunk of vocabulary-wide floats. Under ZeRO-3 the head runs once
    (every head call all-gathers its weight: ranks must make as many calls, whatever their answer counts)."""
    targets = batch.labels[:, 1:]
    mask = targets != IGNORE
    rows, cols = mask.nonzero(as_tuple=True)  # position t predicts token t + 1
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    captured: list[torch.Tensor] = []
    hook = base.get_decoder().register_forward_hook(lambda _m, _a, out: captured.append(_last_hidden(out)))
    none = torch.zeros(0, dtype=torch.long, device=batch.input_ids.device)
    try:
        with autocast_for(batch.input_ids.device):
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=none, use_cache=False)
            picked = captured[-1][rows, cols]  # (N, H)
            flat = head_nll(base, picked, targets[rows, cols], chunk_logits)
    finally:
        hook.remove()
    nll = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device).index_put((rows, cols), flat)
    return nll, mask


def _last_hidden(out: Any) -> torch.Tensor:
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def head_nll(base: Any, hidden: torch.Tensor, targets: torch.Tensor, chunk_logits: int = LOSS_CHUNK_LOGITS) -> torch.Tensor:
    """NLL of `targets` (N,) under the LM head of `base` (a transformers causal LM) applied to `hidden` (N, H),
    computed `chunk_logits // vocabulary` rows at a time (fp32 log-softmax, as transformers' loss)."""
    from torch.utils.checkpoint import checkpoint

    head = base.get_output_embeddings()
    cap = getattr(base.config, "final_logit_softcapping", None)
    vocab = head.weight.shape[0] if head.weight.numel() else getattr(base.config, "vocab_size", 1)
    if _partitioned(head):
        return _chunk_nll(head, hidden, targets, cap)
    step = max(1, chunk_logits // vocab)
    recompute = torch.is_grad_enabled() and hidden.requires_grad and step < hidden.shape[0]
    parts = []
    for i in range(0, hidden.shape[0], step):
        h, t = hidden[i : i + step], targets[i : i + step]
        parts.append(checkpoint(_chunk_nll, head, h, t, cap, use_reentrant=False) if recompute else _chunk_nll(head, h, t, cap))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def _chunk_nll(head: Any, hidden: torch.Tensor, targets: torch.Tensor, cap: float | None) -> torch.Tensor:
    logits = head(hidden).float()
    if cap:  # Gemma 2-style soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, targets, reduction="none")


def _partitioned(module: Any) -> bool:
    return any(hasattr(p, "ds_id") for p in module.parameters())


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """The KV-cache argument of a forward: `cache` since transformers 5.2x (`past_key_values` is
    deprecated there, and removed in 5.40), `past_key_values` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    return {name: cache}


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned (`cache` since transformers 5.2x, `past_key_values` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Random draws inside the block (sampling, dropout) come from `seed`; afterwards the global torch
    RNG, CPU and every initialized CUDA device, is exactly as it was. A library call must not reseed
    the caller's process: whatever the caller draws next would depend on which calls ran before."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:  # seeding an uninitialized CUDA would be queued and applied to the global state later
            torch.cuda.manual_seed_all(seed)
        yield


def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that padded size (rows x longest) stays within budget; similar lengths together."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] * (len(groups[-1]) + 1) <= batch_tokens:
            groups[-1].append(i)  # sorted ascending: lengths[i] is the group's longest
        else:
            groups.append([i])
    return groups


def target_nll(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_tokens: int = 8192,
    reduction: Literal["mean", "sum"] = "mean",
    ranks: Any = None,
    share_prompts: bool = True,
) -> list[float]:
    """NLL of each answer given its prompt: items are (prompt_ids, answer_ids), e.g. from
    `ttt.prompts.grid_scoring_item`. 'mean' = per answer token; 'sum' = -log p(answer), the term to
    add across augmented views for a product of experts. Results are in the order of `items`.

    Items that share a prompt (candidates scored under one view) run that prompt once and score
    every answer against its KV cache (`_shared_prompt_nll`); the rest are batched whole rows.
    Padded size per forward stays within `batch_tokens` (prompt included) either way.
    `share_prompts=False` scores every item as a whole row (what `arc-ttt bench` compares against).

    `ranks` (a `ttt.train.StepRunner` of several data-parallel ranks, all calling with the same items):
    each rank scores every world-th unit of work and all ranks get all results. Under `ranks.lockstep`
    (ZeRO-3) a rank with fewer forwards runs dummy ones so that every rank runs as many."""
    if not items:
        return []
    if any(len(a) == 0 for _, a in items):
        raise ValueError("an item has an empty answer")
    pad = pad_id(tokenizer)
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, (prompt, _) in enumerate(items):
        by_prompt.setdefault(tuple(prompt), []).append(i)
    if not share_prompts:
        by_prompt = {(i,): [i] for i in range(len(items))}
    shared = [ids for ids in by_prompt.values() if len(ids) > 1]
    single = [ids[0] for ids in by_prompt.values() if len(ids) == 1]
    split = ranks is not None and ranks.world > 1
    if split:
        shared, single = shared[ranks.rank :: ranks.world], single[ranks.rank :: ranks.world]
    rows = {i: (list(items[i][0]) + list(items[i][1]), [IGNORE] * len(items[i][0]) + list(items[i][1])) for i in single}
    batches = [[single[j] for j in g] for g in length_batches([len(rows[i][0]) for i in single], batch_tokens)]
    plans = [(ids, _answer_chunks([len(items[i][1]) for i in ids], len(items[ids[0]][0]), batch_tokens)) for ids in shared]
    forwards = len(batches) + sum(1 + len(chunks) for _, chunks in plans)
    padding = ranks.max(forwards) - forwards if ranks is not None and ranks.lockstep else 0
    device, was_training = model_device(model), model.training
    totals: list[tuple[int, float, int]] = []  # (item, summed NLL, answer tokens)
    model.eval()  # no dropout while scoring
    try:
        # no_grad, not inference_mode: ZeRO-3 re-partitions the weights it gathers inside the forward.
        with torch.no_grad():
            for group in batches:
                nll, mask = answer_token_nll(model, collate([rows[i] for i in group], pad).to(device))
                totals += zip(group, nll.sum(dim=1).tolist(), mask.sum(dim=1).tolist())
            for ids, chunks in plans:
                answers = [list(items[i][1]) for i in ids]
                sums = _shared_prompt_nll(model, list(items[ids[0]][0]), answers, chunks, pad, device)
                totals += [(i, total, len(a)) for i, total, a in zip(ids, sums, answers)]
            for _ in range(padding):  # lockstep: pairs with another rank's real forward
                answer_token_nll(model, collate([([pad, pad], [IGNORE, pad])], pad).to(device))
    finally:
        model.train(was_training)
    if split:
        totals = ranks.all_gather(totals)
    out = [0.0] * len(items)
    for i, total, count in totals:
        out[i] = total / count if reduction == "mean" else total
    return out


def _answer_chunks(lengths: Sequence[int], prompt_len: int, batch_tokens: int) -> list[list[int]]:
    """Positions (into `lengths`) per forward over a shared prompt's cache: rows x (prompt + longest
    answer) within budget, the memory the whole rows would have needed; at least one row each."""
    order = sorted(range(len(lengths)), key=lambda j: lengths[j])
    chunks: list[list[int]] = []
    for j in order:
        if chunks and (len(chunks[-1]) + 1) * (prompt_len + lengths[j]) <= batch_tokens:
            chunks[-1].append(j)
        else:
            chunks.append([j])
    return chunks


def _shared_prompt_nll(
    model: Any, prompt: list[int], answers: list[list[int]], chunks: list[list[int]], pad_id: int, device: torch.device
) -> list[float]:
    """Summed NLL of each answer after one prompt: the prompt runs once, its KV cache is repeated per
    answer row. Token 0 of every answer is scored by the prompt's last logit; token t by answer
    position t-1. Right padding: a row's real tokens never attend to its padding."""
    import copy

    ids = torch.tensor([prompt], device=device)
    with autocast_for(device):
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    first = F.log_softmax(out.logits[0, -1].float(), dim=-1)
    prefix = output_cache(out)
    sums = [0.0] * len(answers)
    for chunk in chunks:
        rows = [answers[j] for j in chunk]
        width = max(len(a) for a in rows)
        a_ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), len(prompt) + width), dtype=torch.long, device=device)
        mask[:, : len(prompt)] = 1
        for r, a in enumerate(rows):
            a_ids[r, : len(a)] = torch.as_tensor(a)
            mask[r, len(prompt) : len(prompt) + len(a)] = 1
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(rows))
        with autocast_for(device):
            logits = model(input_ids=a_ids, attention_mask=mask, use_cache=True, **cache_kwargs(model, cache)).logits
        # Position t predicts answer token t+1; padding and the rows' ends are ignored.
        targets = a_ids[:, 1:].clone()
        for r, a in enumerate(rows):
            targets[r, len(a) - 1 :] = IGNORE
        rest = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        heads = -first[a_ids[:, 0]]
        for r, j in enumerate(chunk):
            sums[j] = float(heads[r] + rest[r].sum())
    return sums
