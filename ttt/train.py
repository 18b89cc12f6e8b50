"""Test-time training of the LoRA adapter on one task's samples.

`train_step` is the whole optimizer step and takes `backward` and `step` callables, so the same
code runs plain PyTorch (`loss.backward()`, AdamW) and a DeepSpeed engine (`engine.backward`,
`engine.step`). `adapt` is the per-task loop: reset adapter, new optimizer, schedule, token-budget
micro-batches, stop at `steps` or the deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from augment.loo import Sample
from ttt.config import TrainConfig
from ttt.lora import lora_parameters, reset_adapter
from ttt.nll import Batch, answer_token_nll, collate, model_device
from ttt.prompts import Encoded, encode_samples

MAX_GRAD_NORM = 1.0  # clip: lr 1e-3 on a fresh adapter occasionally spikes on the first steps


def train_step(
    model: Any,
    micro_batches: Sequence[Batch],
    backward: Callable[[torch.Tensor], None],
    step: Callable[[], None],
) -> float:
    """One optimizer step over micro-batches; returns the mean NLL per answer token of the step.

    Each micro-batch's loss is its answer-token NLL sum divided by the step's total answer tokens,
    so accumulated gradients equal those of one big batch whatever the split. (DeepSpeed: pass
    `lambda l: engine.backward(l, scale_wrt_gas=False)` and `engine.step`, as we already scale.)
    """
    total = sum(mb.n_answer for mb in micro_batches)
    step_loss = 0.0
    for mb in micro_batches:
        nll, _ = answer_token_nll(model, mb)
        loss = nll.sum() / total
        backward(loss)
        step_loss += loss.item()
    step()
    return step_loss


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr for optimizer step `step` (0-based): linear warmup, then decay towards 0."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "linear":
        return 1 - progress
    return 1.0


def micro_batches(lengths: Sequence[int], batch_tokens: int, rng: np.random.Generator) -> Iterator[list[int]]:
    """Endless micro-batches of sample indices: each epoch a fresh shuffle, cut greedily so that
    rows x longest row <= batch_tokens (a sample longer than the budget goes alone)."""
    while True:
        group: list[int] = []
        for i in rng.permutation(len(lengths)).tolist():
            width = max([lengths[j] for j in group] + [lengths[i]])
            if group and width * (len(group) + 1) > batch_tokens:
                yield group
                group = []
            group.append(i)
        yield group


@dataclass
class AdaptResult:
    steps: int
    seconds: float
    losses: list[float]
    tokens_per_s: float  # real (unpadded) tokens through forward+backward per second of training
    stopped_by: str  # "steps" | "deadline" | "no_samples"
    samples: dict[str, int] = field(default_factory=dict)  # given / kept / shortened / dropped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_checkpointing(model: Any, on: bool) -> None:
    """Activation checkpointing on the base model (renamed from 'gradient_checkpointing' in transformers 5.2x)."""
    base = model.get_base_model()
    new_api = hasattr(base, "activation_checkpointing_enable")
    if on:
        # Non-reentrant: works with a frozen base and needs no input-embedding grad hooks.
        kwargs = {"use_reentrant": False}
        if new_api:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif new_api and base.is_activation_checkpointing:
        base.activation_checkpointing_disable()
    elif not new_api and base.is_gradient_checkpointing:
        base.gradient_checkpointing_disable()


def adapt(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    cfg: TrainConfig,
    deadline: float | None = None,
) -> AdaptResult:
    """Train a freshly reset adapter on `samples`. `deadline` is a `time.monotonic()` value; a step is
    not started if the mean step time so far says it would end past the deadline (or cfg.time_budget_s)."""
    start = time.monotonic()
    if cfg.time_budget_s is not None:
        deadline = min(deadline if deadline is not None else math.inf, start + cfg.time_budget_s)
    reset_adapter(model, cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout draws
    encoded, counts = encode_samples(tokenizer, samples, cfg.max_seq_len)
    sample_info = {"given": len(samples), **counts.to_dict()}
    if not encoded:
        return AdaptResult(0, time.monotonic() - start, [], 0.0, "no_samples", sample_info)

    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    device = model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stream = micro_batches([len(e.input_ids) for e in encoded], cfg.batch_tokens, np.random.default_rng(cfg.seed))
    losses: list[float] = []
    tokens, train_s, stopped_by = 0, 0.0, "steps"
    set_checkpointing(model, cfg.gradient_checkpointing)
    model.train()
    try:
        for _ in range(cfg.steps):
            now = time.monotonic()
            if deadline is not None and now + (train_s / len(losses) if losses else 0.0) > deadline:
                stopped_by = "deadline"
                break
            mbs = [_batch(encoded, next(stream), pad_id, device) for _ in range(cfg.grad_accum)]
            losses.append(train_step(model, mbs, lambda loss: loss.backward(), step))
            tokens += sum(mb.n_tokens for mb in mbs)
            train_s += time.monotonic() - now
    finally:
        model.eval()
        set_checkpointing(model, False)
        optimizer.zero_grad(set_to_none=True)
    return AdaptResult(len(losses), time.monotonic() - start, losses, tokens / train_s if train_s else 0.0, stopped_by, sample_info)


def _batch(encoded: Sequence[Encoded], indices: list[int], pad_id: int, device: torch.device) -> Batch:
    return collate([(encoded[i].input_ids, encoded[i].labels) for i in indices], pad_id).to(device)
