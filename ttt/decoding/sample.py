"""Sampling from the adapted model: programs (induction) and test-output grids (transduction).

Every call batches prompts: one `generate` per batch of views, with several return sequences each;
never one prompt at a time in a Python loop. Outputs of an augmented view are mapped back to the
original task with the view's inverse before anyone compares them.

Two decoders: `ttt.decoding.decode.sample` (default, `solve.sampler: batched`: one prefill per prompt shared by
its sequences, many sequences per step, a sequence stops at its answer's end, the adapter merged
while sampling) and transformers' `generate` (`solve.sampler: hf`, and always under data-parallel
ranks, whose ZeRO-3 lockstep it implements).

Prompts follow the training length rule (`ttt.prompts`): with `max_seq_len` given, context pairs are
dropped from the start until prompt + the answer's token cap fits; results say when that happened.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from augment.gridtext import GridParseError, parse_prefix_grid
from augment.tasks import MAX_SIDE, Task
from augment.transforms import Augmentation
from ttt.config import KV_TOKENS, PREFILL_TOKENS
from ttt.decoding.decode import GridStop, ProgramStop, StopRule
from ttt.decoding.decode import sample as batched_sample
from ttt.lora import merged_adapter
from ttt.nll import seeded, target_nll
from ttt.prompts import end_ids, fit_prompt, grid_scoring_split, pad_id

GRID_SLACK_TOKENS = 4  # room for a stray leading token (e.g. a word-start marker) before the grid


@dataclass(frozen=True)
class ProgramText:
    view: Augmentation
    text: str
    shortened: bool = False  # the prompt lost context pairs to fit max_seq_len
    logprob: float | None = None  # the model's summed log-probability of the text (batched decoder only)


@dataclass(frozen=True)
class GridGuess:
    """A parsed prediction for one test input, already mapped back to the original task."""

    test_index: int
    view: Augmentation
    grid: np.ndarray | None
    error: str | None  # parse error when grid is None
    text: str = ""  # what the model wrote, in the view's frame
    shortened: bool = False  # the prompt lost context pairs to fit max_seq_len
    logprob: float | None = None  # the model's log-probability of the text under its view, when known


@dataclass(frozen=True)
class GridScores:
    """Product-of-experts scores of a test input's candidates (higher is better)."""

    total: list[float]  # per candidate: summed log-probability over the views
    per_view: list[list[float]]  # per candidate, per view: log-probability under that view
    shortened: int  # scoring items whose prompt lost context pairs to fit max_seq_len


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@dataclass(frozen=True)
class Decoding:
    """How to decode: `sampler` 'batched' (`ttt.decoding.decode`) or 'hf' (`model.generate`, in batches of the
    caller's `batch_size`); batched only: `merge` samples with the adapter merged, `rows` caps the
    sequences per decode step, `stop` says when a continuation holds a complete answer, `draft` is
    text every answer is expected to open with (`ttt.decoding.decode.accept_draft`; '' for none), `kv_tokens`
    and `prefill_tokens` are the decoder's memory budgets (`ttt.decoding.decode.sample`)."""

    sampler: str = "batched"
    merge: bool = True
    rows: int = 32
    stop: StopRule | None = None
    draft: str = ""
    kv_tokens: int = KV_TOKENS
    prefill_tokens: int = PREFILL_TOKENS

    @classmethod
    def of(cls, cfg: Any, stop: StopRule | None = None, draft: str = "") -> "Decoding":
        """From a `solve` config section."""
        return cls(cfg.sampler, cfg.merge_adapter, cfg.decode_rows, stop, draft, cfg.decode_kv_tokens, cfg.prefill_tokens)


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
    decoding: Decoding | None = None,
) -> list[list[str]]:
    """Decoded continuations, `num_return` per prompt (see `generate_scored`)."""
    out = generate_scored(model, tokenizer, prompts, num_return, max_new_tokens, temperature, top_p, batch_size, seed,
                          max_time, ranks, decoding)
    return [[text for text, _ in row] for row in out]


def generate_scored(
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
    decoding: Decoding | None = None,
) -> list[list[tuple[str, float | None]]]:
    """(text, log-probability or None) continuations, `num_return` per prompt.

    `decoding` None is transformers' `generate` in left-padded batches of ~`batch_size` sequences (the
    baseline `arc-ttt bench` compares against); under data-parallel `ranks` that path is always taken.
    `max_time` (seconds, for all batches together) stops generation early; unfinished batches get ''.
    `ranks` with `lockstep` (ZeRO-3, see ttt.ds): every rank runs as many `generate` calls (a rank with
    fewer batches runs 1-token dummies), each with `synced_gpus` so a finished rank keeps stepping
    until all have finished, and the ranks stop for time only together.
    Sampling draws from `seed` in a forked RNG (hf) or a local generator (batched): the caller's
    global torch RNG is left as it was.
    """
    if decoding is not None and decoding.sampler == "batched" and ranks is None:
        with merged_adapter(model, decoding.merge):
            draft = tokenizer.encode(decoding.draft, add_special_tokens=False) if decoding.draft else ()
            rows = batched_sample(model, tokenizer, prompts, num_return, max_new_tokens, temperature, top_p, seed,
                                  end_ids(tokenizer), pad_id(tokenizer), decoding.stop, decoding.rows, max_time, draft=draft,
                                  kv_tokens=decoding.kv_tokens, prefill_tokens=decoding.prefill_tokens)
        return [[(tokenizer.decode(d.ids, skip_special_tokens=True), d.logprob if d.ids else None) for d in row] for row in rows]
    with seeded(seed):
        texts = _generate(model, tokenizer, prompts, num_return, max_new_tokens, temperature, top_p, batch_size, max_time, ranks)
    return [[(t, None) for t in row] for row in texts]


def _generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    num_return: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    max_time: float | None,
    ranks: Any,
) -> list[list[str]]:
    pad = pad_id(tokenizer)
    per_batch = max(1, batch_size // max(1, num_return))
    greedy = temperature <= 0
    lockstep = ranks is not None and ranks.lockstep
    chunks = [prompts[i : i + per_batch] for i in range(0, len(prompts), per_batch)]
    n_batches = ranks.max(len(chunks)) if lockstep else len(chunks)
    out: list[list[str]] = []
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


def _side_bound(task: Task, side: int, axis: int) -> int:
    """Largest output size along `axis` for a test input of size `side`: the max over the rules that
    hold on every train pair (constant output size; out = k x in for one rational k, e.g. upscaling,
    tiling, halving; out = in + c for one c, e.g. borders); when none holds, the max of every train
    output, the test input, and the test input scaled by the largest ratio any train pair shows."""
    ins = [p.input.shape[axis] for p in task.train]
    outs = [p.output.shape[axis] for p in task.train]
    ratios = {Fraction(o, i) for i, o in zip(ins, outs)}
    offsets = {o - i for i, o in zip(ins, outs)}
    rules = []
    if len(set(outs)) == 1:
        rules.append(outs[0])
    if len(ratios) == 1:
        rules.append(math.ceil(side * next(iter(ratios))))
    if len(offsets) == 1:
        rules.append(side + next(iter(offsets)))
    if not rules:
        rules = [max(outs), side, math.ceil(side * max(ratios))]
    return min(MAX_SIDE, max(1, max(rules)))


def output_shape_bounds(task: Task) -> list[tuple[int, int]]:
    """Per test input, the largest output shape (rows, cols) the train pairs suggest, capped at 30x30."""
    return [(_side_bound(task, x.shape[0], 0), _side_bound(task, x.shape[1], 1)) for x in task.test_inputs]


def grid_text_tokens(rows: int, cols: int) -> int:
    """Upper bound on the tokens of a grid's text (`augment.gridtext`: a 'HxW' header line, then one
    digit per cell and a newline between rows): its character count, since every token of the
    tokenizers we use covers at least one character (digit-splitting ones: exactly one per digit)."""
    return len(f"{rows}x{cols}\n") + rows * cols + (rows - 1)


def grid_token_budget(task: Task, tokenizer: Any = None) -> int:
    """Token cap for generating any of the task's test output grids: the largest shape
    `output_shape_bounds` allows, in grid-text tokens, plus the end-of-turn tokens and a little slack."""
    shapes = output_shape_bounds(task)
    end = len(end_ids(tokenizer)) if tokenizer is not None else 1
    return max(grid_text_tokens(h, w) for h, w in shapes) + end + GRID_SLACK_TOKENS


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
    max_seq_len: int | None = None,
) -> list[ProgramText]:
    """`per_view` programs for each view of the task (the view's train pairs and test inputs shown).
    `ranks`: see `generate` (a rank with no views still takes part in lockstep). `max_seq_len`: prompts
    lose context pairs until prompt + `cfg.program_max_new_tokens` fit (None: never shortened)."""
    if per_view <= 0:
        return []
    prompts = []
    for v in views:
        vt = v.apply_task(task)
        prompts.append(fit_prompt(tokenizer, "program", vt.train, None, vt.test_inputs, cfg.program_max_new_tokens, max_seq_len))
    texts = generate_scored(
        model, tokenizer, [p.ids for p in prompts], per_view, cfg.program_max_new_tokens, cfg.temperature, cfg.top_p,
        cfg.batch_size, seed, max_time, ranks, Decoding.of(cfg, ProgramStop(), cfg.program_draft),
    )
    return [ProgramText(v, t, p.shortened, lp) for v, p, ts in zip(views, prompts, texts) for t, lp in ts]


def predict_grids(
    model: Any,
    tokenizer: Any,
    task: Task,
    views: Sequence[Augmentation],
    cfg: Any,
    seed: int,
    max_time: float | None = None,
    ranks: Any = None,
    max_seq_len: int | None = None,
) -> list[GridGuess]:
    """Direct predictions of every test output under every view, by `cfg.grid_search`: 'greedy' (one
    per view), 'sample' (greedy, then `grid_samples_per_view - 1` samples) or 'dfs' (every grid of
    probability >= `dfs_min_prob`, the greedy one always among them: `ttt.decoding.grid_search`).
    `ranks`: see `generate` (a rank with no views still takes part in lockstep; 'dfs' falls back to
    'sample' under ranks). `max_seq_len`: prompts lose context pairs until prompt + the grid token
    budget fit (None: never shortened)."""
    budget = grid_token_budget(task, tokenizer)
    items = []  # (test index, view, prompt)
    for v in views:
        vt = v.apply_task(task)
        for i, g in enumerate(vt.test_inputs):
            items.append((i, v, fit_prompt(tokenizer, "grid", vt.train, g, (), budget, max_seq_len)))
    prompts = [p.ids for _, _, p in items]
    if cfg.grid_search == "dfs" and ranks is None:
        texts = _search_all(model, tokenizer, prompts, budget, cfg, max_time)
    else:
        end = None if max_time is None else time.monotonic() + max_time
        decoding = Decoding.of(cfg, GridStop())
        texts = generate_scored(model, tokenizer, prompts, 1, budget, 0.0, 1.0, cfg.batch_size, seed, max_time, ranks, decoding)
        if cfg.grid_search != "greedy" and cfg.grid_samples_per_view > 1:
            left = None if end is None else end - time.monotonic()
            n, temp = cfg.grid_samples_per_view - 1, cfg.grid_temperature
            more = generate_scored(model, tokenizer, prompts, n, budget, temp, 1.0, cfg.batch_size, seed, left, ranks, decoding)
            texts = [a + b for a, b in zip(texts, more)]
    return [parse_guess(i, v, text, p.shortened, lp) for (i, v, p), outs in zip(items, texts) for text, lp in outs]


def _search_all(model: Any, tokenizer: Any, prompts: Sequence[list[int]], budget: int, cfg: Any,
                max_time: float | None) -> list[list[tuple[str, float | None]]]:
    """`ttt.decoding.grid_search` per prompt, the time left shared out evenly among the prompts not yet searched."""
    from ttt.decoding.grid_search import GridGrammar, search_grids
    from ttt.memory import rows_for_kv

    grammar = GridGrammar(tokenizer, end_ids(tokenizer))
    end = None if max_time is None else time.monotonic() + max_time
    out: list[list[tuple[str, float | None]]] = []
    with merged_adapter(model, cfg.merge_adapter):
        for k, prompt in enumerate(prompts):
            left = None if end is None else (end - time.monotonic()) / (len(prompts) - k)
            if left is not None and left <= 0:
                out.append([])
                continue
            rows = rows_for_kv(model, len(prompt) + budget, cfg.decode_rows, cfg.decode_kv_tokens)  # live prefixes are rows
            found = search_grids(model, tokenizer, grammar, prompt, pad_id(tokenizer), cfg.dfs_min_prob, budget,
                                 rows, cfg.dfs_max_candidates, left, cfg.prefill_tokens)
            out.append([(g.text, g.logprob) for g in found.grids])
    return out


def parse_guess(test_index: int, view: Augmentation, text: str, shortened: bool, logprob: float | None = None) -> GridGuess:
    """Parse one generated text and map its grid back to the original task's frame."""
    try:
        return GridGuess(test_index, view, view.invert_grid(parse_prefix_grid(text)), None, text, shortened, logprob)
    except GridParseError as e:
        return GridGuess(test_index, view, None, str(e), text, shortened, logprob)


def score_grids(
    model: Any,
    tokenizer: Any,
    task: Task,
    test_index: int,
    candidates: Sequence[np.ndarray],
    views: Sequence[Augmentation],
    batch_tokens: int = 8192,
    ranks: Any = None,
    max_seq_len: int | None = None,
) -> GridScores:
    """Product of experts: each candidate's summed log-probability over the scoring views (higher is better).
    `ranks`: split across data-parallel ranks (see `ttt.nll.target_nll`; all ranks pass the same candidates).
    `max_seq_len`: each item's context is shortened as a training sample of it would be.

    A candidate the model likes under one orientation but not others is probably an artifact of that
    view; the sum over views rewards answers that are consistent under the task's symmetries.
    """
    if not candidates or not views:
        return GridScores([0.0] * len(candidates), [[] for _ in candidates], 0)
    view_tasks = [(v, v.apply_task(task)) for v in views]
    splits = [
        grid_scoring_split(tokenizer, vt.train, vt.test_inputs[test_index], v.apply_grid(c), max_seq_len)
        for c in candidates
        for v, vt in view_tasks
    ]
    items = [(s.prompt_ids, s.answer_ids) for s in splits]
    nll = target_nll(model, tokenizer, items, batch_tokens=batch_tokens, reduction="sum", ranks=ranks)
    k = len(views)
    per_view = [[-x for x in nll[i * k : (i + 1) * k]] for i in range(len(candidates))]
    return GridScores([sum(row) for row in per_view], per_view, sum(s.shortened for s in splits))
