"""Per-token negative log-likelihood of answer tokens: the one loss used by training and scoring.

Rows are right-padded (causal attention never looks at the padding after a row's end) and the LM
head runs only at positions that predict an answer token (`logits_to_keep`): with a 49k vocabulary
the head is a quarter of SmolLM2's compute per token, and answers are a small part of a prompt.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F

from ttt.prompts import IGNORE


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


def answer_token_nll(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(nll, mask), both (B, K): NLL of each answer token, at the K positions any row needs."""
    wanted = (batch.labels[:, 1:] != IGNORE).any(dim=0)
    positions = wanted.nonzero().squeeze(1)  # position t predicts token t+1
    with autocast_for(batch.input_ids.device):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=positions, use_cache=False)
    targets = batch.labels[:, positions + 1]
    mask = targets != IGNORE
    nll = F.cross_entropy(out.logits.float().transpose(1, 2), targets.clamp_min(0), reduction="none")
    return nll * mask, mask


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


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
) -> list[float]:
    """NLL of each answer given its prompt: items are (prompt_ids, answer_ids), e.g. from
    `ttt.prompts.grid_scoring_item`. 'mean' = per answer token; 'sum' = -log p(answer), the term to
    add across augmented views for a product of experts. Results are in the order of `items`.

    `ranks` (a `ttt.train.StepRunner` of several data-parallel ranks, all calling with the same items):
    each rank scores every world-th item and all ranks get all results. Under `ranks.lockstep`
    (ZeRO-3) a rank with fewer batches runs dummy forwards so that every rank runs as many."""
    if not items:
        return []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [(list(p) + list(a), [IGNORE] * len(p) + list(a)) for p, a in items]
    if any(len(a) == 0 for _, a in items):
        raise ValueError("an item has an empty answer")
    split = ranks is not None and ranks.world > 1
    mine = list(range(ranks.rank, len(rows), ranks.world)) if split else list(range(len(rows)))
    groups = [[mine[j] for j in g] for g in length_batches([len(rows[i][0]) for i in mine], batch_tokens)]
    n_batches = ranks.max(len(groups)) if ranks is not None and ranks.lockstep else len(groups)
    device, was_training = model_device(model), model.training
    results: list[tuple[int, float]] = []
    model.eval()  # no dropout while scoring
    try:
        # no_grad, not inference_mode: ZeRO-3 re-partitions the weights it gathers inside the forward.
        with torch.no_grad():
            for b in range(n_batches):
                if b >= len(groups):  # lockstep padding: the result is thrown away
                    answer_token_nll(model, collate([([pad_id, pad_id], [IGNORE, pad_id])], pad_id).to(device))
                    continue
                group = groups[b]
                nll, mask = answer_token_nll(model, collate([rows[i] for i in group], pad_id).to(device))
                totals, counts = nll.sum(dim=1), mask.sum(dim=1)
                values = totals / counts if reduction == "mean" else totals
                results += zip(group, values.tolist())
    finally:
        model.train(was_training)
    if split:
        results = ranks.all_gather(results)
    out = [0.0] * len(rows)
    for i, v in results:
        out[i] = v
    return out
