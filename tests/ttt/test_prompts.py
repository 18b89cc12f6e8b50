"""Prompt formats: loss only on the answer, generation prompt = training prefix, honest shortening."""

from __future__ import annotations

import numpy as np

from augment.gridtext import grid_to_text
from augment.loo import build_samples
from augment.sets import get_set
from ttt import prompts
from ttt.prompts import IGNORE


def unmasked(enc) -> list[int]:
    return [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]


def test_labels_cover_exactly_the_answer_and_end_token(tokenizer, flip_task):
    target = flip_task.train[2].output
    enc = prompts.encode_sample(tokenizer, flip_task.train[:2], flip_task.train[2].input, grid_to_text(target))
    assert tokenizer.decode(unmasked(enc)) == grid_to_text(target) + "<|im_end|>"
    # labels equal the input ids where they are kept, and the kept span is one contiguous tail
    first = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE)
    assert enc.labels[first:] == enc.input_ids[first:]
    assert all(lab == IGNORE for lab in enc.labels[:first])
    assert not enc.shortened and enc.n_context == 2


def test_generation_prompt_is_the_training_prefix(tokenizer, flip_task):
    ctx, query = flip_task.train[:2], flip_task.train[2].input
    prompt = prompts.grid_prompt_ids(tokenizer, ctx, query)
    enc = prompts.encode_sample(tokenizer, ctx, query, grid_to_text(flip_task.train[2].output))
    assert enc.input_ids[: len(prompt)] == prompt
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    text = tokenizer.decode(prompt)
    assert prompts.GRID_INSTRUCTION in text and "SmolLM" not in text  # our short system prompt replaces the default
    assert grid_to_text(query) in text


def test_program_target(tokenizer, flip_task):
    code = "def transform(grid):\n    return grid[::-1]"
    answer = prompts.program_answer(code)
    enc = prompts.encode_sample(tokenizer, flip_task.train, None, answer, kind="program", test_inputs=flip_task.test_inputs)
    assert tokenizer.decode(unmasked(enc)) == "```python\n" + code + "\n```<|im_end|>"
    prompt = prompts.program_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs)
    assert enc.input_ids[: len(prompt)] == prompt
    assert "transform(grid: list[list[int]]) -> list[list[int]]" in tokenizer.decode(prompt)


def test_long_samples_lose_pairs_from_the_start_then_are_dropped(tokenizer, flip_task):
    ctx, query, answer = flip_task.train[:2], flip_task.train[2].input, grid_to_text(flip_task.train[2].output)
    full = prompts.encode_sample(tokenizer, ctx, query, answer)
    one = prompts.encode_sample(tokenizer, ctx[1:], query, answer)
    short = prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(full.input_ids) - 1)
    assert short.shortened and short.n_context == 1 and short.input_ids == one.input_ids  # kept the last pair
    assert prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(one.input_ids) - 1) is None
    exact = prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(full.input_ids))
    assert not exact.shortened


def test_encode_samples_counts(tokenizer, flip_task):
    samples, _ = build_samples(flip_task, get_set("geometric"), 6, np.random.default_rng(0))
    lengths = sorted(len(e.input_ids) for e in prompts.encode_samples(tokenizer, samples, 4096)[0])
    encoded, counts = prompts.encode_samples(tokenizer, samples, lengths[0] - 1)  # every sample must lose a pair
    assert counts.to_dict() == {"kept": len(samples), "shortened": len(samples), "dropped": 0}
    assert all(e.n_context == 1 and len(e.input_ids) <= lengths[0] - 1 for e in encoded)
    _, none_fit = prompts.encode_samples(tokenizer, samples, 20)
    assert none_fit.to_dict() == {"kept": 0, "shortened": 0, "dropped": len(samples)}


def test_grid_scoring_item_matches_training_encoding(tokenizer, flip_task):
    ctx, query, target = flip_task.train[:2], flip_task.train[2].input, flip_task.train[2].output
    p, a = prompts.grid_scoring_item(tokenizer, ctx, query, target)
    assert p + a == prompts.encode_sample(tokenizer, ctx, query, grid_to_text(target)).input_ids


def test_digits_are_one_token_each(tokenizer):
    # Why the format is compact: a cell costs one token, a row one more for the newline.
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4) % 10
    # "3", "x", "4", "\n" + 12 digits + 2 newlines between rows
    assert len(tokenizer.encode(grid_to_text(grid), add_special_tokens=False)) == 4 + 12 + 2
