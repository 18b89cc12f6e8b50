"""Test-time training of the LoRA adapter on one task's samples.

`train_step` is the whole optimizer step and takes `backward` and `step` callables, so the same
code runs plain PyTorch (`loss.backward()`, AdamW) and a DeepSpeed engine (`engine.backward`,
`engine.step`). `adapt` is the per-task loop: reset adapter, new optimizer, schedule, token-budget
micro-batches, stop at `steps` or the deadline. What differs between one process and data-parallel
ranks (who owns the optimizer, which micro-batches a rank takes, agreeing on losses and on stopping)
lives behind a `StepRunner`; `LocalRunner` is plain PyTorch, `ttt.ds.DeepSpeedRunner` a DeepSpeed engine.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from augment.loo import Sample
from ttt.config import TrainConfig
from ttt.lora import lora_parameters
from ttt.nll import Batch, answer_token_nll, collate, model_device, seeded
from ttt.prompts import Encoded, encode_samples, pad_id

MAX_GRAD_NORM = 1.0  # clip: lr 1e-3 on a fresh adapter occasionally spikes on the first steps


class StepOutOfMemory(RuntimeError):
    """A micro-batch of this step ran out of device memory on some rank: no rank took the step."""


def train_step(
    model: Any,
    micro_batches: Sequence[Batch],
    backward: Callable[[torch.Tensor], None],
    step: Callable[[], None],
    agree: Callable[[bool], bool] | None = None,
) -> float:
    """One optimizer step over micro-batches; returns the mean NLL per answer token of the step.

    Each micro-batch's loss is its answer-token NLL sum divided by the step's total answer tokens,
    so accumulated gradients equal those of one big batch whatever the split. (DeepSpeed: pass
    `lambda l: engine.backward(l, scale_wrt_gas=False)` and `engine.step`, as we already scale.)

    `agree` (a `StepRunner.any`): out-of-memory errors are caught and the step is abandoned by every rank
    together (`StepOutOfMemory`, no optimizer step). Ranks agree after each forward and each backward, so
    one that ran out before a collective of the others' backward never leaves them waiting on it; an
    error inside the backward's own collectives is left to the collective timeout. Without `agree` the
    error propagates as it is."""
    total = sum(mb.n_answer for mb in micro_batches)
    step_loss = 0.0
    failed = False
    for mb in micro_batches:
        loss = None
        for phase in ("forward", "backward"):
            if not failed:
                try:
                    if phase == "forward":
                        nll, _ = answer_token_nll(model, mb)
                        loss = nll.sum() / total
                    else:
                        backward(loss)
                        step_loss += loss.item()
                except torch.OutOfMemoryError:
                    if agree is None:
                        raise
                    failed, loss, nll = True, None, None  # drop the graph before anything else is allocated
            if agree is not None and agree(failed):
                failed = True
        if failed:  # every rank has seen the same agreement: all skip the rest of the step
            break
    if failed:
        raise StepOutOfMemory("a micro-batch ran out of device memory")
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


class StepRunner(Protocol):
    """How optimizer steps are taken: one process (LocalRunner) or one rank of many (ttt.ds); also the
    ranks' collectives that sampling and scoring use to split their work."""

    rank: int
    world: int
    lockstep: bool  # every forward must run on all ranks together (ZeRO-3 gathers weights inside it)

    def start(self, model: Any, params: list[torch.nn.Parameter], cfg: TrainConfig) -> None:
        """Fresh optimizer state for a task whose adapter was just reset."""

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self) -> None: ...

    def mean(self, value: float) -> float:
        """The mean of `value` over ranks (identity in one process)."""

    def any(self, flag: bool) -> bool:
        """True when any rank says True: ranks must stop at the same step or the next collective hangs."""

    def finish(self) -> None:
        """Drop per-task optimizer state (grads, moments): sampling comes next and needs the memory."""

    def drop_step(self) -> None:
        """Forget the gradients of an abandoned step (an out-of-memory micro-batch)."""

    def max(self, value: int) -> int:
        """The largest `value` over ranks."""

    def all_gather(self, items: list[Any]) -> list[Any]:
        """Every rank's `items` concatenated in rank order, on every rank."""


class LocalRunner:
    """One process: torch AdamW over the LoRA weights, warmup + decay schedule, gradient clipping."""

    rank, world, lockstep = 0, 1, False

    def start(self, model: Any, params: list[torch.nn.Parameter], cfg: TrainConfig) -> None:
        self.params = params
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def mean(self, value: float) -> float:
        return value

    def any(self, flag: bool) -> bool:
        return flag

    def finish(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.state.clear()  # AdamW moments: the next task's start builds a new optimizer anyway

    def drop_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def max(self, value: int) -> int:
        return value

    def all_gather(self, items: list[Any]) -> list[Any]:
        return list(items)


@dataclass
class AdaptResult:
    steps: int
    seconds: float
    losses: list[float]
    tokens_per_s: float  # real (unpadded) tokens through forward+backward per second of training
    stopped_by: str  # "steps" | "deadline" | "no_samples" | "out_of_memory" (one sample per micro-batch still did not fit)
    samples: dict[str, int] = field(default_factory=dict)  # given / kept / shortened / dropped
    out_of_memory: int = 0  # steps abandoned for device memory, each followed by halving the micro-batch tokens
    batch_tokens: int = 0  # the micro-batch token budget at the end (train.batch_tokens unless halved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_checkpointing(model: Any, on: bool) -> None:
    """Activation checkpointing on the base model (renamed from 'gradient_checkpointing' in transformers 5.2x).
    `model`: a peft wrapper, or a plain transformers model (full fine-tuning)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
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
    runner: StepRunner | None = None,
    encoded: Sequence[Encoded] = (),
) -> AdaptResult:
    """Train the model's adapter on `samples`, from wherever it is: callers reset it first
    (`ttt.lora.reset_adapter`), usually to measure the untrained model before. `deadline` is a `time.monotonic()` value; a step is
    not started if the mean step time so far says it would end past the deadline (or cfg.time_budget_s).
    `encoded`: more samples already tokenized (`ttt.prompts.encode_sample`, e.g. program targets for
    test-time search), mixed with the grid samples in one stream.

    With `runner` a rank of `world` data-parallel ranks, every rank draws the same micro-batch stream
    and takes every `world`-th micro-batch of each step (grad_accum x world per step in all); the
    recorded loss is the mean over ranks. Dropout draws come from `cfg.seed` in a forked RNG: the
    caller's global torch RNG is left as it was."""
    with seeded(cfg.seed):
        return _adapt(model, tokenizer, samples, cfg, deadline, runner or LocalRunner(), encoded)


def _adapt(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    cfg: TrainConfig,
    deadline: float | None,
    runner: StepRunner,
    pre_encoded: Sequence[Encoded] = (),
) -> AdaptResult:
    start = time.monotonic()
    if cfg.time_budget_s is not None:
        deadline = min(deadline if deadline is not None else math.inf, start + cfg.time_budget_s)
    encoded, counts = encode_samples(tokenizer, samples, cfg.max_seq_len)
    sample_info = {"given": len(samples), **counts.to_dict()}
    if pre_encoded:
        encoded += pre_encoded
        sample_info["pre_encoded"] = len(pre_encoded)
    if not encoded:
        return AdaptResult(0, time.monotonic() - start, [], 0.0, "no_samples", sample_info, 0, cfg.batch_tokens)

    runner.start(model, lora_parameters(model), cfg)
    device = model_device(model)
    pad = pad_id(tokenizer)
    lengths = [len(e.input_ids) for e in encoded]
    budget, rng = cfg.batch_tokens, np.random.default_rng(cfg.seed)
    stream = micro_batches(lengths, budget, rng)
    losses: list[float] = []
    tokens, train_s, stopped_by, ooms = 0, 0.0, "steps", 0
    set_checkpointing(model, cfg.gradient_checkpointing)
    model.train()
    try:
        while len(losses) < cfg.steps:
            now = time.monotonic()
            late = deadline is not None and now + (train_s / len(losses) if losses else 0.0) > deadline
            if runner.any(late):
                stopped_by = "deadline"
                break
            drawn = [next(stream) for _ in range(cfg.grad_accum * runner.world)]
            mbs = [_batch(encoded, g, pad, device) for g in drawn[runner.rank :: runner.world]]
            try:
                losses.append(runner.mean(train_step(model, mbs, runner.backward, runner.step, runner.any)))
            except StepOutOfMemory:
                # Free, halve the micro-batch tokens and take the step again from a fresh draw. Every rank
                # got the same agreement, and all draw the same stream, so they halve together.
                runner.drop_step()
                mbs = []
                free_device_memory(device)
                ooms += 1
                if budget <= min(lengths):  # one sample per micro-batch already: nothing left to halve
                    stopped_by = "out_of_memory"
                    break
                budget = max(min(lengths), budget // 2)
                stream = micro_batches(lengths, budget, rng)
                continue
            tokens += sum(mb.n_tokens for mb in mbs)
            train_s += time.monotonic() - now
    finally:
        model.eval()
        set_checkpointing(model, False)
        runner.finish()
        if device.type == "cuda":
            free_device_memory(device)
    return AdaptResult(len(losses), time.monotonic() - start, losses, tokens / train_s if train_s else 0.0, stopped_by, sample_info,
                       ooms, budget)


def free_device_memory(device: torch.device) -> None:
    """Return cached blocks to the device after an out-of-memory error or before sampling (CUDA only)."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _batch(encoded: Sequence[Encoded], indices: list[int], pad_id: int, device: torch.device) -> Batch:
    return collate([(encoded[i].input_ids, encoded[i].labels) for i in indices], pad_id).to(device)
