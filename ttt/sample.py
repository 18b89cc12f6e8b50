"""Sampling from the adapted model: programs (induction) and test-output grids (transduction).

Every call batches prompts: one `generate` per batch of views, with several return sequences each;
never one prompt at a time in a Python loop. Outputs of an augmented view are mapped back to the
original task with the view's inverse before anyone compares them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from augment.gridtext import GridParseError, parse_prefix_grid
from augment.tasks import Task
from augment.transforms import Augmentation
from ttt.nll import target_nll
from ttt.prompts import grid_prompt_ids, grid_scoring_item, pad_id, program_prompt_ids


@dataclass(frozen=True)
class ProgramText:
    view: Augmentation
    text: str


@dataclass(frozen=True)
class GridGuess:
    """A parsed prediction for one test input, already mapped back to the original task."""

    test_index: int
    view: Augmentation
    grid: np.ndarray | None
    error: str | None  # parse error when grid is None


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    num_return: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
) -> list[list[str]]:
    """Decoded continuations, `num_return` per prompt; left-padded batches of ~`batch_size` sequences.

    `max_time` (seconds, for all batches together) stops generation early; unfinished batches get ''.
    `ranks` with `lockstep` (ZeRO-3, see ttt.ds): every rank runs as many `generate` calls (a rank with
    fewer batches runs 1-token dummies), each with `synced_gpus` so a finished rank keeps stepping
    until all have finished, and the ranks stop for time only together.
    """
    pad = pad_id(tokenizer)
    per_batch = max(1, batch_size // max(1, num_return))
    greedy = temperature <= 0
    lockstep = ranks is not None and ranks.lockstep
    chunks = [prompts[i : i + per_batch] for i in range(0, len(prompts), per_batch)]
    n_batches = ranks.max(len(chunks)) if lockstep else len(chunks)
    out: list[list[str]] = []
    torch.manual_seed(seed)
    device = _device(model)
    was_training = model.training
    model.eval()
    end = None if max_time is None else time.monotonic() + max_time
    try:
        for b in range(n_batches):
            chunk = chunks[b] if b < len(chunks) else []
            left = None if end is None else end - time.monotonic()
            late = left is not None and left <= 0
            if ranks.any(late) if lockstep else late:
                out += [[""] * num_return for _ in chunk]
                continue
            if not chunk:  # lockstep padding: pairs this rank's forwards with the others' real batch
                dummy = torch.full((1, 1), pad, device=device)
                with torch.no_grad():
                    model.generate(input_ids=dummy, attention_mask=torch.ones_like(dummy), max_new_tokens=1,
                                   do_sample=False, pad_token_id=pad, synced_gpus=True)
                continue
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=pad, num_return_sequences=num_return)
            if left is not None:
                kwargs["max_time"] = left
            if lockstep:
                kwargs["synced_gpus"] = True
            if greedy:
                kwargs.update(do_sample=False, num_return_sequences=1)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            # no_grad, not inference_mode: ZeRO-3 re-partitions the weights it gathers inside the forward.
            with torch.no_grad():
                seqs = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            texts = tokenizer.batch_decode(seqs[:, width:], skip_special_tokens=True)
            n = 1 if greedy else num_return
            # Greedy decoding gives one sequence; repeat it so callers always get num_return entries.
            out += [texts[i * n : (i + 1) * n] * (num_return if greedy else 1) for i in range(len(chunk))]
    finally:
        model.train(was_training)
    return out


def grid_token_budget(task: Task) -> int:
    """Upper bound on tokens for an output grid: the largest train output or test input, plus slack."""
    grids = [p.output for p in task.train] + list(task.test_inputs)
    h = max(g.shape[0] for g in grids)
    w = max(g.shape[1] for g in grids)
    return (h + 1) * (w + 1) + 16  # header line + one token per cell + newline per row + end marker


def sample_programs(
    model: Any,
    tokenizer: Any,
    task: Task,
    views: Sequence[Augmentation],
    per_view: int,
    cfg: Any,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
) -> list[ProgramText]:
    """`per_view` programs for each view of the task (the view's train pairs and test inputs shown).
    `ranks`: see `generate` (a rank with no views still takes part in lockstep)."""
    if per_view <= 0:
        return []
    prompts = []
    for v in views:
        vt = v.apply_task(task)
        prompts.append(program_prompt_ids(tokenizer, vt.train, vt.test_inputs))
    texts = generate(
        model, tokenizer, prompts, per_view, cfg.program_max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size, seed,
        max_time, ranks,
    )
    return [ProgramText(v, t) for v, ts in zip(views, texts) for t in ts]


def predict_grids(
    model: Any,
    tokenizer: Any,
    task: Task,
    views: Sequence[Augmentation],
    cfg: Any,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
) -> list[GridGuess]:
    """Direct predictions of every test output under every view: greedy first, then samples.
    `ranks`: see `generate` (a rank with no views still takes part in lockstep)."""
    items = []  # (test index, view, prompt)
    for v in views:
        vt = v.apply_task(task)
        for i, g in enumerate(vt.test_inputs):
            items.append((i, v, grid_prompt_ids(tokenizer, vt.train, g)))
    budget = grid_token_budget(task)
    prompts = [p for _, _, p in items]
    end = None if max_time is None else time.monotonic() + max_time
    texts = generate(model, tokenizer, prompts, 1, budget, 0.0, 1.0, cfg.batch_size, seed, max_time, ranks)
    if cfg.grid_samples_per_view > 1:
        left = None if end is None else end - time.monotonic()
        n, temp = cfg.grid_samples_per_view - 1, cfg.grid_temperature
        more = generate(model, tokenizer, prompts, n, budget, temp, 1.0, cfg.batch_size, seed, left, ranks)
        texts = [a + b for a, b in zip(texts, more)]
    guesses = []
    for (i, v, _), outs in zip(items, texts):
        for text in outs:
            try:
                guesses.append(GridGuess(i, v, v.invert_grid(parse_prefix_grid(text)), None))
            except GridParseError as e:
                guesses.append(GridGuess(i, v, None, str(e)))
    return guesses


def score_grids(
    model: Any,
    tokenizer: Any,
    task: Task,
    test_index: int,
    candidates: Sequence[np.ndarray],
    views: Sequence[Augmentation],
    batch_tokens: int = 8192,
    ranks: Any = None,
) -> list[float]:
    """Product of experts: each candidate's summed log-probability over the scoring views (higher is better).
    `ranks`: split across data-parallel ranks (see `ttt.nll.target_nll`; all ranks pass the same candidates).

    A candidate the model likes under one orientation but not others is probably an artifact of that
    view; the sum over views rewards answers that are consistent under the task's symmetries.
    """
    if not candidates or not views:
        return [0.0] * len(candidates)
    view_tasks = [(v, v.apply_task(task)) for v in views]
    items = [
        grid_scoring_item(tokenizer, vt.train, vt.test_inputs[test_index], v.apply_grid(c))
        for c in candidates
        for v, vt in view_tasks
    ]
    nll = target_nll(model, tokenizer, items, batch_tokens=batch_tokens, reduction="sum", ranks=ranks)
    k = len(views)
    return [-sum(nll[i * k : (i + 1) * k]) for i in range(len(candidates))]
