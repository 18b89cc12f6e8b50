"""The decoder within memory budgets: prefills in pieces, rows from a KV-token budget, the KV buffer
freed when rows leave, the draft's nucleus found once per prompt, and half the rows after an
out-of-memory error. Each gives the same continuations as the unbudgeted decoder."""

from __future__ import annotations

import weakref

import pytest
import torch

import ttt.decoding.decode as decode
from ttt.decoding.decode import forward_step, prefill, sample
from ttt.decoding.decode_speed import grow_in_place
from ttt.memory import kv_bytes_per_token, rows_for_kv
from ttt.prompts import end_ids, grid_prompt_ids, pad_id, program_prompt_ids


@pytest.fixture
def prompts(tokenizer, flip_task, color_task):
    return [grid_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs[0]),
            program_prompt_ids(tokenizer, color_task.train, color_task.test_inputs)]


def ids_of(rows):
    return [[d.ids for d in r] for r in rows]


def test_a_prefill_in_pieces_equals_one_forward(tiny, tokenizer, prompts):
    pad = pad_id(tokenizer)
    with torch.no_grad():
        whole, mask, cache = prefill(tiny, prompts, pad)
        pieces, mask2, cache2 = prefill(tiny, prompts, pad, max_tokens=2 * 37)  # 37 positions per piece, left padding inside
        assert torch.equal(mask, mask2)
        torch.testing.assert_close(pieces, whole, rtol=1e-4, atol=1e-4)
        for a, b in zip(cache.layers, cache2.layers):
            torch.testing.assert_close(b.keys, a.keys, rtol=1e-4, atol=1e-4)
    args = (tiny, tokenizer, prompts, 1, 10, 0.0, 1.0, 0, end_ids(tokenizer), pad)
    assert ids_of(sample(*args, prefill_tokens=50)) == ids_of(sample(*args))


def test_rows_come_from_the_kv_token_budget(tiny, tokenizer, prompts, monkeypatch):
    calls = []
    real = decode.prefill
    monkeypatch.setattr(decode, "prefill", lambda m, ps, pad, *a: calls.append(len(ps)) or real(m, ps, pad, *a))
    new = 8
    row_tokens = max(len(p) for p in prompts) + new
    assert rows_for_kv(tiny, row_tokens, 32, 2 * row_tokens) == 2
    args = (tiny, tokenizer, prompts, 4, new, 1.0, 1.0, 5, [], pad_id(tokenizer))
    budgeted = sample(*args, max_rows=8, kv_tokens=2 * row_tokens)
    assert calls == [1, 1, 1, 1], "2 rows of KV: each prompt's 4 sequences in 2 groups"
    assert [len(r) for r in budgeted] == [4, 4] and all(len(d.ids) == new for r in budgeted for d in r)
    greedy = (tiny, tokenizer, prompts, 3, new, 0.0, 1.0, 0, end_ids(tokenizer), pad_id(tokenizer))
    assert ids_of(sample(*greedy, kv_tokens=row_tokens)) == ids_of(sample(*greedy))


def test_kv_bytes_per_token_of_qwen_shapes():
    from ttt.models import RANDOM_PRESETS

    # 28 layers x 4 KV heads x 128 wide x (K + V) x 2 bytes: 57 kB per token for Qwen2.5-7B in bf16
    assert kv_bytes_per_token(RANDOM_PRESETS["qwen2.5-7b"], 2) == 2 * 28 * 4 * 128 * 2
    assert kv_bytes_per_token(RANDOM_PRESETS["qwen2.5-1.5b"], 2) == 2 * 28 * 2 * 128 * 2


def test_rows_leaving_free_the_old_kv_buffer_and_spare_room_follows_the_tokens_left(tiny, tokenizer, prompts):
    pad = pad_id(tokenizer)
    with torch.no_grad():
        logits, mask, cache = prefill(tiny, prompts, pad)
        cache.batch_repeat_interleave(3)
        mask = mask.repeat_interleave(3, 0)
        grow_in_place(cache, 10)
        lengths = mask.sum(-1)
        nxt = logits.repeat_interleave(3, 0).argmax(-1)
        for _ in range(4):
            mask = torch.cat([mask, mask.new_ones((len(nxt), 1))], 1)
            logits, cache = forward_step(tiny, nxt[:, None], mask, lengths[:, None], cache)
            nxt, lengths = logits.argmax(-1), lengths + 1
        layer = cache.layers[0]
        n = layer.keys.shape[-2]
        assert layer.left == 6 and layer._kbuf.shape[-2] == n + 6  # sized at the first update: room for the 10 new tokens
        old = weakref.ref(layer._kbuf)
        before = layer.keys.clone()
        cache.batch_select_indices(torch.tensor([1, 4]))
        assert old() is None, "the old buffer is gone once the kept rows moved out"
        assert layer._kbuf.shape[0] == 2 and layer._kbuf.shape[-2] == n + 6  # room for the tokens still to come only
        assert torch.equal(layer.keys, before[[1, 4]]) and layer.keys.data_ptr() == layer._kbuf.data_ptr()
        buf = layer._kbuf
        keep = torch.tensor([1, 4])
        mask = torch.cat([mask[keep], mask.new_ones((2, 1))], 1)
        forward_step(tiny, nxt[keep][:, None], mask, lengths[keep][:, None], cache)
        assert layer._kbuf is buf and layer.left == 5  # the next token went into the room, no regrowth


def test_the_drafts_nucleus_is_found_once_per_prompt(tiny, tokenizer, prompts, monkeypatch):
    sorted_rows = []
    real = decode.nucleus_probs
    monkeypatch.setattr(decode, "nucleus_probs", lambda logits, *a: sorted_rows.append(logits.shape[0]) or real(logits, *a))
    draft = [5, 6, 7]
    rows = sample(tiny, tokenizer, prompts, 6, 6, 0.8, 0.95, 3, [], pad_id(tokenizer), draft=draft, max_rows=12)
    assert sorted_rows[0] == len(prompts) * (len(draft) + 1), "2 prompts x 4 draft positions, not 12 rows x 4"
    assert [len(r) for r in rows] == [6, 6]


def test_out_of_memory_in_sampling_halves_the_rows(tiny, tokenizer, prompts):
    """A device with room for 2 decode rows: the first group (8 rows) raises inside the real forward, the
    decoder frees and goes on with 4, then 2 rows per group; the greedy output is what it always was."""
    seen = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {ids.shape[0]} rows)")
        seen.append(ids.shape[0])

    args = (tiny, tokenizer, prompts, 4, 6, 0.0, 1.0, 0, end_ids(tokenizer), pad_id(tokenizer))
    want = ids_of(sample(*args, max_rows=8))
    handle = tiny.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        sampled = sample(tiny, tokenizer, prompts, 4, 6, 1.0, 1.0, 0, [], pad_id(tokenizer), max_rows=8)
        got = ids_of(sample(*args, max_rows=8))
    finally:
        handle.remove()
    assert [len(r) for r in sampled] == [4, 4] and max(seen) <= 2
    assert got == want
