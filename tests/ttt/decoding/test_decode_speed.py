"""ttt.decoding.decode_speed and the nucleus sampler: the fast decode step computes what transformers' step
computes, and the nucleus is the same set of tokens with the same probabilities."""

from __future__ import annotations

import pytest
import torch

from ttt.decoding.decode import accept_draft, forward_step, nucleus_probs, prefill, sample, sample_nucleus
from ttt.decoding.decode_speed import _RoomyLayer, grow_in_place, small_rows_linears
from ttt.prompts import end_ids, grid_prompt_ids, pad_id, program_prompt_ids


@pytest.fixture
def prompts(tokenizer, flip_task, color_task):
    return [grid_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs[0]),
            program_prompt_ids(tokenizer, color_task.train, color_task.test_inputs)]


def decode_logits(model, prompts, pad, steps, fast, drop_after=None):
    """Logits of `steps` greedy decode steps of 3 copies of each prompt; rows 0 and 4 leave after `drop_after`."""
    out = []
    with torch.no_grad(), (small_rows_linears(model) if fast else torch.no_grad()):
        logits, mask, cache = prefill(model, prompts, pad)
        cache.batch_repeat_interleave(3)
        logits, mask = logits.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
        if fast:
            assert grow_in_place(cache, 2) == len(cache.layers)  # little spare room: the buffers must regrow
        lengths = mask.sum(-1)
        for step in range(steps):
            out.append(logits)
            nxt = logits.argmax(-1)
            if step == drop_after:
                keep = torch.tensor([1, 2, 3, 5])
                cache.batch_select_indices(keep)
                nxt, mask, lengths = nxt[keep], mask[keep], lengths[keep]
            mask = torch.cat([mask, mask.new_ones((len(nxt), 1))], 1)
            logits, cache = forward_step(model, nxt[:, None], mask, lengths[:, None], cache)
            lengths = lengths + 1
    return out, cache


@pytest.mark.parametrize("drop_after", [None, 3])
def test_fast_steps_compute_transformers_steps(tiny, tokenizer, prompts, drop_after):
    plain, _ = decode_logits(tiny, prompts, pad_id(tokenizer), 9, False, drop_after)
    fast, cache = decode_logits(tiny, prompts, pad_id(tokenizer), 9, True, drop_after)
    assert all(type(layer) is _RoomyLayer for layer in cache.layers)
    for a, b in zip(plain, fast):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)  # the same sums in another order
        assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_small_rows_linears_switch_back_even_on_error(tiny):
    linears = [m for m in tiny.modules() if type(m) is torch.nn.Linear]
    x = torch.randn(3, linears[0].in_features)
    with pytest.raises(RuntimeError, match="boom"), small_rows_linears(tiny) as switched:
        assert switched == len(linears) > 0
        torch.testing.assert_close(linears[0](x), torch.nn.functional.linear(x, linears[0].weight, linears[0].bias))
        raise RuntimeError("boom")
    assert all("forward" not in m.__dict__ for m in linears)


def test_sampled_programs_are_the_same_with_and_without_fast_steps(tiny, tokenizer, prompts):
    args = (tiny, tokenizer, prompts, 3, 10, 0.0, 1.0, 0, end_ids(tokenizer), pad_id(tokenizer))
    assert [[d.ids for d in r] for r in sample(*args)] == [[d.ids for d in r] for r in sample(*args, fast_steps=False)]


@pytest.mark.parametrize("kind,top_p", [("peaked", 0.95), ("peaked", 0.5), ("flat", 0.95), ("peaked", 1.0)])
def test_nucleus_sampling_draws_from_the_top_p_distribution(kind, top_p):
    g = torch.Generator().manual_seed(0)
    vocab = 500
    if kind == "peaked":  # a nucleus of a handful of tokens: found within the first 64
        logits = torch.full((2, vocab), -8.0)
        logits[0, [3, 9, 40, 77]] = torch.tensor([2.0, 1.5, 1.0, 0.0])
        logits[1, [5, 6]] = torch.tensor([1.0, 0.9])
    else:  # hundreds of tokens in the nucleus: the full-sort path
        logits = torch.randn(2, vocab, generator=g) * 0.1
    want = nucleus_probs(logits, 0.8, top_p)
    draws = torch.stack([sample_nucleus(logits, 0.8, top_p, g) for _ in range(4000)])  # (n, rows)
    for row in range(2):
        counts = torch.bincount(draws[:, row], minlength=vocab).float() / len(draws)
        assert set(counts.nonzero().squeeze(1).tolist()) <= set(want[row].nonzero().squeeze(1).tolist())
        assert (counts - want[row]).abs().max() < 0.03


def test_accept_draft_samples_exactly_as_token_by_token():
    """Fixed logits for 2 draft positions and the one after: the first token ~ q0; given the first is
    d0, the second ~ q1; given both, the third ~ q2 (speculative sampling's guarantee)."""
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -9.0], [0.0, 3.0, 0.2, 0.1, -1.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    draft = [1, 1]
    rows = 30000
    tokens, lps = accept_draft(base.expand(rows, 3, 6).clone(), draft, 0.8, 0.95, g)
    q = nucleus_probs(base, 0.8, 0.95)
    assert all(len(t) == len(lp) for t, lp in zip(tokens, lps))
    for pos in range(3):
        reached = [t for t in tokens if t[:pos] == draft[:pos] and len(t) > pos]
        counts = torch.bincount(torch.tensor([t[pos] for t in reached]), minlength=6).float() / len(reached)
        assert (counts - q[pos]).abs().max() < 0.015, (pos, counts, q[pos])
    assert lps[0] == pytest.approx(base.log_softmax(-1)[torch.arange(len(tokens[0])), torch.tensor(tokens[0])].tolist())


@pytest.mark.parametrize("how", ["right", "partly right", "wrong"])
def test_greedy_with_a_draft_writes_what_it_writes_without(tiny, tokenizer, prompts, how):
    ends, pad = end_ids(tokenizer), pad_id(tokenizer)
    plain = sample(tiny, tokenizer, prompts, 1, 10, 0.0, 1.0, 0, ends, pad)
    first = plain[0][0].ids
    draft = {"right": first[:4], "partly right": first[:2] + [first[2] + 1, 5], "wrong": [first[0] + 1, 7, 7]}[how]
    drafted = sample(tiny, tokenizer, prompts, 1, 10, 0.0, 1.0, 0, ends, pad, draft=draft)
    assert [r[0].ids for r in drafted] == [r[0].ids for r in plain]
    for a, b in zip(drafted, plain):
        assert a[0].logprob == pytest.approx(b[0].logprob, abs=1e-4)


def test_sampled_continuations_after_a_draft_carry_the_models_logprob(tiny, tokenizer, prompts):
    ends, pad = end_ids(tokenizer), pad_id(tokenizer)
    greedy = sample(tiny, tokenizer, prompts[:1], 1, 8, 0.0, 1.0, 0, ends, pad)[0][0].ids
    rows = sample(tiny, tokenizer, prompts, 6, 8, 0.05, 1.0, 1, ends, pad, draft=greedy[:5])  # near-greedy: prompt 0 keeps it
    accepted = 0
    for prompt, row in zip(prompts, rows):
        for d in row:
            with torch.no_grad():
                logp = tiny(input_ids=torch.tensor([prompt + d.ids])).logits[0, len(prompt) - 1 : -1].log_softmax(-1)
            assert d.logprob == pytest.approx(float(logp.gather(1, torch.tensor(d.ids)[:, None]).sum()), abs=1e-3)
            accepted += d.ids[:5] == greedy[:5]
    assert accepted > 0  # some rows kept the whole draft: the cache after it was used
