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


def whole_logits_nll(model, batch):
    """The loss before chunking: logits at the union of answer positions for every row, then fp32 cross-entropy."""
    positions = (batch.labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(1)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=positions, use_cache=False).logits
    targets = batch.labels[:, positions + 1]
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets.clamp_min(0), reduction="none")
    return (nll * (targets != -100)).sum(dim=1)


def test_chunked_head_loss_equals_whole_logits_loss_and_gradients(tiny, tokenizer, flip_task):
    """Labelled positions only, the head one row at a time, recomputed in backward: the same per-row NLL
    as whole-batch logits (1e-5) and the same adapter gradients."""
    from ttt.config import LoraConfig
    from ttt.lora import lora_parameters, wrap_lora
    from ttt.nll import answer_token_nll

    model = wrap_lora(tiny, LoraConfig(r=4))
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.05)  # a non-zero adapter: gradients reach both A and B
    rows = [(list(p) + list(a), [-100] * len(p) + list(a)) for p, a in items_for(tokenizer, flip_task)]
    batch = collate(rows, tokenizer.pad_token_id)
    grads = []
    for chunk in (None, len(tokenizer) + 1):  # whole logits, then 1 row per head chunk
        model.zero_grad()
        per_row = whole_logits_nll(model, batch) if chunk is None else answer_token_nll(model, batch, chunk)[0].sum(dim=1)
        per_row.sum().backward()
        grads.append((per_row.detach(), [p.grad.clone() for p in lora_parameters(model)]))
    (ref, ref_grads), (got, got_grads) = grads
    assert got.tolist() == pytest.approx(ref.tolist(), rel=1e-5)
    # gradients: fp32 sums in another order (chunks), so to 1e-4 of each tensor's scale
    assert all(float((a - b).abs().max()) <= 1e-4 * float(b.abs().max()) for a, b in zip(got_grads, ref_grads))


def big_allocations_unmapped_on_free() -> None:
    """glibc: tensors over 1 MB get their own mapping, returned to the OS when freed, so the peak RSS
    measures the peak of live tensors (with its default sliding threshold freed memory stays resident)."""
    import ctypes

    M_MMAP_THRESHOLD = -3
    assert ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 2**20) == 1


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def test_loss_memory_is_bounded_at_a_152k_vocabulary(tokenizer):
    """Forward + backward of the loss over 640 answer tokens at Qwen2.5's vocabulary: whole logits would be
    370 MB of fp32 (and as much again for the log-softmax); the chunked head stays within a few 16 MB chunks
    (measured: ~50 MB; `python bench/loss_memory.py` compares with the whole-logits loss)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttt.config import LoraConfig
    from ttt.lora import wrap_lora
    from ttt.nll import answer_token_nll

    vocab, chunk = 152_064, 2**22
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    model = wrap_lora(LlamaForCausalLM(cfg), LoraConfig(r=4))
    ids = torch.randint(0, vocab, (2, 321)).tolist()
    batch = collate([(r, r) for r in ids], 0)  # every position labelled: 640 answer tokens
    whole_mb = batch.n_answer * vocab * 4 / 2**20
    big_allocations_unmapped_on_free()
    answer_token_nll(model, collate([(ids[0][:8], ids[0][:8])], 0), chunk)[0].sum().backward()  # warm-up: one-time allocations
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := current RSS
    before = _rss_kb("VmRSS")
    nll, _ = answer_token_nll(model, batch, chunk)
    nll.sum().backward()
    peak_mb = (_rss_kb("VmHWM") - before) / 1024
    assert batch.n_answer == 640 and whole_mb > 350
    assert peak_mb < whole_mb / 4, f"loss peak {peak_mb:.0f} MB; whole logits {whole_mb:.0f} MB"
