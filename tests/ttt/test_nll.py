"""Batched scoring equals one-at-a-time scoring, in input order, and agrees with the training loss."""

from __future__ import annotations

import pytest
import torch

from ttt.nll import collate, length_batches, target_nll
from ttt.prompts import grid_scoring_item


def items_for(tokenizer, task):
    # different lengths: contexts of 0..2 pairs (0 pairs is allowed for scoring)
    return [grid_scoring_item(tokenizer, task.train[:k], task.train[2].input, task.train[2].output) for k in (2, 0, 1)]


def test_batched_equals_single_and_keeps_order(tiny, tokenizer, flip_task):
    items = items_for(tokenizer, flip_task)
    batched = target_nll(tiny, tokenizer, items, batch_tokens=10_000)
    single = [target_nll(tiny, tokenizer, [it], batch_tokens=1)[0] for it in items]
    assert batched == pytest.approx(single, rel=1e-5)
    assert len(set(round(v, 6) for v in batched)) == 3  # really different items, not a repeated one


def shared_prompt_items(tokenizer, task):
    """Candidates for one query under one prompt (answers of 1..n tokens), plus two lone items."""
    prompt, truth = grid_scoring_item(tokenizer, task.train, task.test_inputs[0], task.test_outputs[0])
    answers = [truth, truth[:1], truth[::-1], truth[: len(truth) // 2], [t for t in truth if t != truth[0]] or truth[1:]]
    return [(prompt, a) for a in answers] + items_for(tokenizer, task)[:2]


@pytest.mark.parametrize("budget", [100_000, 1], ids=["all-answers-in-one-forward", "one-answer-per-forward"])
def test_shared_prompt_cache_equals_whole_rows(tiny, tokenizer, flip_task, budget):
    """Answers sharing a prompt are scored against its KV cache; each must equal scoring the whole
    row alone (the plain path), whatever the chunking, including a 1-token answer."""
    items = shared_prompt_items(tokenizer, flip_task)
    shared = target_nll(tiny, tokenizer, items, batch_tokens=budget, reduction="sum")
    alone = [target_nll(tiny, tokenizer, [it], reduction="sum")[0] for it in items]
    assert shared == pytest.approx(alone, rel=1e-4)
    assert len(set(round(v, 4) for v in shared[:5])) == 5  # five really different candidates


def test_sum_is_mean_times_answer_tokens(tiny, tokenizer, flip_task):
    items = items_for(tokenizer, flip_task)
    mean = target_nll(tiny, tokenizer, items, reduction="mean")
    total = target_nll(tiny, tokenizer, items, reduction="sum")
    assert total == pytest.approx([m * len(a) for m, (_, a) in zip(mean, items)], rel=1e-5)


def test_matches_plain_cross_entropy(tiny, tokenizer, flip_task):
    prompt, answer = items_for(tokenizer, flip_task)[0]
    ids = torch.tensor([prompt + answer])
    with torch.inference_mode():
        logits = tiny(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(answer)).item()
    assert target_nll(tiny, tokenizer, [(prompt, answer)])[0] == pytest.approx(expected, rel=1e-5)


def test_scoring_restores_training_mode(tiny, tokenizer, flip_task):
    tiny.train()
    target_nll(tiny, tokenizer, items_for(tokenizer, flip_task)[:1])
    assert tiny.training


def test_length_batches_respect_budget():
    lengths = [5, 50, 7, 40, 6, 100]
    groups = length_batches(lengths, 100)
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert all(max(lengths[i] for i in g) * len(g) <= 100 or len(g) == 1 for g in groups)


def test_collate_right_pads_and_counts():
    b = collate([([1, 2, 3], [-100, 2, 3]), ([4, 5], [-100, 5])], pad_id=0)
    assert b.input_ids.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b.labels.tolist() == [[-100, 2, 3], [-100, 5, -100]]
    assert (b.n_tokens, b.n_answer) == (5, 3)
