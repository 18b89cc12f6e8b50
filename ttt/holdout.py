"""Adapt on one task and score held-out answers: `arc-ttt adapt` and the pipeline's leave-one-out eval.

nll_before is measured on a freshly reset adapter (LoRA B = 0, so exactly the base model) and
nll_after on the trained one; both are mean NLL per answer token (grid text + end-of-turn).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from augment.config import AugmentConfig
from augment.loo import BuildReport, Sample, build_samples
from augment.sets import get_set
from augment.tasks import Pair, Task
from ttt.config import LoraConfig, ModelConfig, TrainConfig
from ttt.lora import reset_adapter, trainable_parameter_count, wrap_lora
from ttt.models import load_model
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item
from ttt.train import adapt


def task_samples(task: Task, augment: AugmentConfig, seed: int) -> tuple[list[Sample], BuildReport]:
    """A task's leave-one-out training samples exactly as the pipeline's TTT builds them: every
    `augment` setting (set, count, background permutation, single-pair tasks) and the seed's stream."""
    a = augment
    return build_samples(task, get_set(a.set), a.n_samples, np.random.default_rng(seed), a.permute_background, a.allow_single_pair)


def adapt_and_score(
    model: Any,
    tokenizer: Any,
    task: Task,
    train_cfg: TrainConfig,
    augment: AugmentConfig,
    seed: int,
    runner: Any = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Adapt on `task.train` (leave-one-out samples) and score task.test_outputs before and after.
    `runner`: the data-parallel ranks' `ttt.train.StepRunner` (None in one process). `deadline`
    (time.monotonic()): training stops at it (scoring still runs, so the numbers are complete)."""
    samples, build = task_samples(task, augment, seed)
    items = []
    if task.test_outputs is not None:
        items = [
            grid_scoring_item(tokenizer, task.train, q, t, train_cfg.max_seq_len) for q, t in zip(task.test_inputs, task.test_outputs)
        ]
    reset_adapter(model, train_cfg.seed)
    before = target_nll(model, tokenizer, items, ranks=runner)
    result = adapt(model, tokenizer, samples, train_cfg, deadline, runner=runner)
    after = target_nll(model, tokenizer, items, ranks=runner)
    return {**result.to_dict(), "build": build.to_dict(), "nll_before": before, "nll_after": after}


def adapt_command(
    task: Task,
    model_cfg: ModelConfig,
    lora_cfg: LoraConfig,
    train_cfg: TrainConfig,
    augment_set: str = "geometric",
    n_samples: int = 32,
    seed: int = 0,
    leave_one_out: bool = False,
) -> dict[str, Any]:
    """Run TTT on one task; JSON-able dict. With leave_one_out, each train pair is also held out in
    turn (adapt on the other pairs, score the held-out one): `holdout` lists those runs."""
    start = time.monotonic()
    augment = AugmentConfig(set=augment_set, n_samples=n_samples)
    model, tokenizer = load_model(model_cfg)
    model = wrap_lora(model, lora_cfg, model_cfg.adapter)
    report: dict[str, Any] = {
        "task": task.id,
        "model": model_cfg.source,
        "trainable_params": trainable_parameter_count(model),
        "load_s": time.monotonic() - start,
        **adapt_and_score(model, tokenizer, task, train_cfg, augment, seed),
    }
    if leave_one_out:
        report["holdout"] = [
            {"pair": i, **adapt_and_score(model, tokenizer, hold_out(task, i), train_cfg, augment, seed)}
            for i in range(len(task.train))
        ]
    report["total_s"] = time.monotonic() - start
    return report


def hold_out(task: Task, i: int) -> Task:
    rest: Sequence[Pair] = task.train[:i] + task.train[i + 1 :]
    held = task.train[i]
    return Task(f"{task.id}-without-{i}", tuple(rest), (held.input,), (held.output,))
