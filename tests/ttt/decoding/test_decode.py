"""The batched decoder (ttt.decoding.decode): the same tokens as transformers' generate, shared prefills, early
stops, local randomness; and the merged adapter that leaves the base weights bit-identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.gridtext import grid_to_text
from ttt.config import LoraConfig
from ttt.decoding.decode import GridStop, ProgramStop, sample
from ttt.lora import lora_layers, merged_adapter, wrap_lora
from ttt.prompts import end_ids, grid_prompt_ids, pad_id, program_prompt_ids


def hf_greedy(model, tokenizer, prompt, new_tokens):
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id(tokenizer))
    return out[0, len(prompt):].tolist()


@pytest.fixture
def prompts(tokenizer, flip_task, color_task):
    # different lengths: the batch is left-padded
    return [grid_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs[0]),
            program_prompt_ids(tokenizer, color_task.train, color_task.test_inputs)]


def test_greedy_matches_transformers_generate_alone_and_left_padded(tiny, tokenizer, prompts):
    assert len(prompts[0]) != len(prompts[1])
    ends = end_ids(tokenizer)
    together = sample(tiny, tokenizer, prompts, 1, 12, 0.0, 1.0, 0, ends, pad_id(tokenizer))
    for prompt, row in zip(prompts, together):
        ref = hf_greedy(tiny, tokenizer, prompt, 12)
        alone = sample(tiny, tokenizer, [prompt], 1, 12, 0.0, 1.0, 0, ends, pad_id(tokenizer))[0][0]
        assert row[0].ids == alone.ids == ref[: len(alone.ids)]
        assert alone.stop in ("end", "length") and (alone.stop == "end") == (len(alone.ids) < 12)


def test_logprob_is_the_models_probability_of_the_tokens(tiny, tokenizer, prompts):
    d = sample(tiny, tokenizer, prompts[:1], 1, 6, 0.9, 1.0, 3, [], pad_id(tokenizer))[0][0]
    with torch.no_grad():
        ids = torch.tensor([prompts[0] + d.ids])
        logp = tiny(input_ids=ids).logits[0, len(prompts[0]) - 1 : -1].log_softmax(-1)
    want = float(logp.gather(1, torch.tensor(d.ids)[:, None]).sum())
    assert d.logprob == pytest.approx(want, abs=1e-4)


def test_samples_are_seeded_locally_and_share_one_prefill(tiny, tokenizer, prompts, monkeypatch):
    import ttt.decoding.decode as decode

    calls = []
    real = decode.prefill
    monkeypatch.setattr(decode, "prefill", lambda m, ps, pad, *a: calls.append(len(ps)) or real(m, ps, pad, *a))
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = sample(tiny, tokenizer, prompts, 4, 8, 1.0, 1.0, 5, [], pad_id(tokenizer), max_rows=8)
    assert torch.equal(torch.get_rng_state(), before), "the global RNG was used"
    assert calls == [2], "one prefill for both prompts' 8 sequences"
    b = sample(tiny, tokenizer, prompts, 4, 8, 1.0, 1.0, 5, [], pad_id(tokenizer), max_rows=8)
    c = sample(tiny, tokenizer, prompts, 4, 8, 1.0, 1.0, 6, [], pad_id(tokenizer), max_rows=8)
    assert [[d.ids for d in r] for r in a] == [[d.ids for d in r] for r in b] != [[d.ids for d in r] for r in c]
    assert len({tuple(d.ids) for d in a[0]}) > 1
    calls.clear()
    sample(tiny, tokenizer, prompts, 4, 8, 1.0, 1.0, 5, [], pad_id(tokenizer), max_rows=4)
    assert calls == [1, 1], "max_rows=4 leaves room for one prompt's 4 sequences per group"


class StopAfter:
    """Stops a row once its text is at least `n` characters long."""

    def __init__(self, n):
        self.n = n

    def done(self, text):
        return len(text) >= self.n


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny, tokenizer, prompts):
    ends = end_ids(tokenizer)
    full = sample(tiny, tokenizer, prompts, 1, 10, 0.0, 1.0, 0, ends, pad_id(tokenizer))
    texts = [tokenizer.decode(r[0].ids) for r in full]
    cut = sample(tiny, tokenizer, prompts, 1, 10, 0.0, 1.0, 0, ends, pad_id(tokenizer), stop=StopAfter(len(texts[0]) // 2 or 1))
    assert cut[0][0].stop == "rule" and len(cut[0][0].ids) < len(full[0][0].ids)
    # the other prompt's row kept decoding after its neighbour left: same tokens as when both ran to the end
    n = len(cut[1][0].ids)
    assert cut[1][0].ids == full[1][0].ids[:n]


def test_time_budget_returns_what_was_written(tiny, tokenizer, prompts):
    out = sample(tiny, tokenizer, prompts, 2, 50, 1.0, 1.0, 0, [], pad_id(tokenizer), max_time=0.0)
    assert [[d.stop for d in r] for r in out] == [["time", "time"], ["time", "time"]]


@pytest.mark.parametrize(
    "rule, text, done",
    [
        (ProgramStop(), "```python\ndef transform(g):\n    return g\n", False),
        (ProgramStop(), "```python\ndef transform(g):\n    return g\n```", True),
        (ProgramStop(), "Here you go: ```python\nx = 1\n```\nmore", True),
        (ProgramStop(), "no code at all", False),
        (GridStop(), "2x3\n012\n34", False),
        (GridStop(), "2x3\n012\n345", True),
        (GridStop(), "2x3\n0123", True),  # row too wide: hopeless, stop
        (GridStop(), "2x3\n01\n", True),  # newline too early
        (GridStop(), "2x", False),
        (GridStop(), "hello world\n", True),  # no header: will not parse
        (GridStop(), grid_to_text(np.arange(30).reshape(5, 6) % 10), True),
    ],
)
def test_stop_rules(rule, text, done):
    assert rule.done(text) is done


def test_merged_adapter_is_faithful_and_the_base_comes_back_bit_identical(tiny, tokenizer, prompts):
    model = wrap_lora(tiny, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)  # a trained-looking adapter (B is zero at init)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with merged_adapter(model):
            assert all(layer.merged for layer in lora_layers(model))
            merged = model(input_ids=ids).logits
            changed = [n for n, p in model.named_parameters() if "base_layer" in n and not torch.equal(p, base[n])]
            assert changed, "merging wrote the delta into the base weights"
    assert torch.allclose(merged, unmerged, atol=1e-4)
    assert not any(layer.merged for layer in lora_layers(model))
    for n, p in model.named_parameters():
        if "base_layer" in n:
            assert torch.equal(p, base[n]), f"{n} not restored bit for bit"
    with pytest.raises(RuntimeError), merged_adapter(model):
        raise RuntimeError("a failure while sampling")
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "base_layer" in n)


def test_a_bf16_model_samples_unmerged(tiny, tokenizer, prompts):
    """bf16 rounds most of a small delta away when merged: such a model is never merged, and nothing changes."""
    from ttt.lora import merge_is_exact

    model = wrap_lora(tiny.to(torch.bfloat16), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    with torch.no_grad(), merged_adapter(model):
        assert not merge_is_exact(model) and not any(layer.merged for layer in lora_layers(model))
        assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "base_layer" in n)


def test_a_bf16_merge_would_lose_most_of_a_small_delta():
    """Why bf16 models sample unmerged: a delta of 1e-3 of the weight, added in bf16, mostly vanishes."""
    w = torch.randn(256, 256)
    delta = w * 1e-3 * torch.randn(256, 256).sign()
    kept = (w.bfloat16() + delta.bfloat16()) != w.bfloat16()
    assert kept.float().mean() < 0.3
