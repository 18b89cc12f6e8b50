"""The TTT loop: learns, is deterministic, does not leak between tasks, honours the deadline."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from augment.loo import build_samples
from augment.sets import get_set
from ttt.config import LoraConfig, TrainConfig
from ttt.lora import lora_parameters, reset_adapter, wrap_lora
from ttt.nll import collate
from ttt.prompts import encode_samples
from ttt.train import adapt, lr_factor, micro_batches, train_step


def fresh_adapt(model, tokenizer, samples, cfg, **kwargs):
    """What the pipeline does per task: reset the adapter (to cfg.seed), then train it."""
    reset_adapter(model, cfg.seed)
    return adapt(model, tokenizer, samples, cfg, **kwargs)


def samples_of(task, n=8, seed=0):
    return build_samples(task, get_set("geometric"), n, np.random.default_rng(seed))[0]


def lora_weights(model):
    return [p.detach().clone() for p in lora_parameters(model)]


@pytest.fixture
def model(tiny):
    return wrap_lora(tiny, LoraConfig(r=8))


def test_loss_falls_on_a_fixed_task(model, tokenizer, flip_task):
    cfg = TrainConfig(steps=16, lr=1e-2, warmup_steps=1, batch_tokens=4096)
    result = fresh_adapt(model, tokenizer, samples_of(flip_task), cfg)
    assert result.steps == 16 and result.stopped_by == "steps" and len(result.losses) == 16
    assert np.mean(result.losses[-4:]) < 0.6 * np.mean(result.losses[:4])
    assert result.tokens_per_s > 0 and result.samples == {"given": 8, "kept": 8, "shortened": 0, "dropped": 0}


def test_two_tasks_in_a_row_do_not_contaminate(make_tiny, tokenizer, flip_task, color_task):
    cfg = TrainConfig(steps=4, lr=1e-2, batch_tokens=600, seed=5)
    shared = wrap_lora(make_tiny(0), LoraConfig(r=8))
    fresh_adapt(shared, tokenizer, samples_of(flip_task), cfg)
    b_after_a = fresh_adapt(shared, tokenizer, samples_of(color_task), cfg)
    alone = wrap_lora(make_tiny(0), LoraConfig(r=8))
    b_alone = fresh_adapt(alone, tokenizer, samples_of(color_task), cfg)
    assert b_after_a.losses == b_alone.losses  # exact, not approximate
    assert all(torch.equal(x, y) for x, y in zip(lora_weights(shared), lora_weights(alone)))


def test_seed_changes_the_run(model, tokenizer, flip_task):
    a = fresh_adapt(model, tokenizer, samples_of(flip_task), TrainConfig(steps=3, lr=1e-2, seed=0, batch_tokens=300))
    b = fresh_adapt(model, tokenizer, samples_of(flip_task), TrainConfig(steps=3, lr=1e-2, seed=1, batch_tokens=300))
    assert a.losses != b.losses


def test_deadline_stops_training(model, tokenizer, flip_task):
    samples = samples_of(flip_task)
    past = fresh_adapt(model, tokenizer, samples, TrainConfig(steps=50), deadline=time.monotonic() - 1)
    assert (past.steps, past.stopped_by, past.losses) == (0, "deadline", [])
    t0 = time.monotonic()
    budget = fresh_adapt(model, tokenizer, samples, TrainConfig(steps=100_000, time_budget_s=0.5))
    assert budget.stopped_by == "deadline" and 0 < budget.steps < 100_000
    assert time.monotonic() - t0 < 3.0


def test_no_samples_fit(model, tokenizer, flip_task):
    result = fresh_adapt(model, tokenizer, samples_of(flip_task, 4), TrainConfig(steps=5, max_seq_len=16))
    assert (result.steps, result.stopped_by) == (0, "no_samples")
    assert result.samples["dropped"] == result.samples["given"]


def test_pre_encoded_samples_are_trained_with_the_grid_samples(model, tokenizer, flip_task):
    """Program targets (test-time search's hindsight samples) come in already encoded: alone they train
    (no 'no_samples'), with grid samples they join one stream, and the loss falls on them."""
    from ttt.prompts import encode_sample, program_answer

    program = encode_sample(tokenizer, flip_task.train, None, program_answer("def transform(grid):\n    return grid[::-1]"), "program",
                            1024, flip_task.test_inputs)
    cfg = TrainConfig(steps=12, lr=1e-2, warmup_steps=0, batch_tokens=4096)
    alone = fresh_adapt(model, tokenizer, [], cfg, encoded=[program])
    assert alone.stopped_by == "steps" and alone.samples == {"given": 0, "kept": 0, "shortened": 0, "dropped": 0, "pre_encoded": 1}
    assert alone.losses[-1] < 0.5 * alone.losses[0]
    mixed = fresh_adapt(model, tokenizer, samples_of(flip_task, 4), TrainConfig(steps=2, lr=1e-2), encoded=[program])
    assert mixed.samples["kept"] == 4 and mixed.samples["pre_encoded"] == 1 and mixed.steps == 2


def test_accumulated_micro_batches_equal_one_batch(model, tokenizer, flip_task):
    encoded, _ = encode_samples(tokenizer, samples_of(flip_task, 4), 4096)
    rows = [(e.input_ids, e.labels) for e in encoded[:3]]
    pad = tokenizer.pad_token_id
    grads = []
    for split in ([rows], [rows[:1], rows[1:]]):
        model.zero_grad()
        loss = train_step(model, [collate(r, pad) for r in split], lambda l: l.backward(), lambda: None)
        grads.append((loss, [p.grad.clone() for p in lora_parameters(model)]))
    (loss1, g1), (loss2, g2) = grads
    assert loss1 == pytest.approx(loss2, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))


def test_gradient_checkpointing_gives_the_same_losses(make_tiny, tokenizer, flip_task):
    runs = []
    for ckpt in (False, True):
        model = wrap_lora(make_tiny(0), LoraConfig(r=8))
        runs.append(fresh_adapt(model, tokenizer, samples_of(flip_task), TrainConfig(steps=3, gradient_checkpointing=ckpt)))
        assert not model.get_base_model().is_activation_checkpointing  # switched off again after adapt
    assert runs[0].losses == pytest.approx(runs[1].losses, rel=1e-4)


def test_lr_schedule():
    cfg = TrainConfig(steps=10, warmup_steps=2, schedule="cosine")
    factors = [lr_factor(s, cfg) for s in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a >= b for a, b in zip(factors[2:], factors[3:])) and factors[-1] > 0
    assert lr_factor(5, cfg.model_copy(update={"schedule": "constant"})) == 1.0


def test_micro_batches_cover_each_epoch_within_budget():
    lengths = [10, 30, 20, 50, 5]
    stream = micro_batches(lengths, 60, np.random.default_rng(0))
    epoch, seen = [], 0
    while seen < len(lengths):
        group = next(stream)
        epoch.append(group)
        seen += len(group)
    assert sorted(i for g in epoch for i in g) == list(range(5))
    assert all(max(lengths[i] for i in g) * len(g) <= 60 for g in epoch)


def test_adapt_leaves_the_global_rng_alone_and_is_deterministic(make_tiny, tokenizer, flip_task):
    """Dropout draws come from cfg.seed in a forked RNG: the caller's RNG state is untouched, and the
    same seed gives the same run whatever the caller drew before."""
    cfg = TrainConfig(steps=3, lr=1e-2, batch_tokens=300, seed=3)
    runs = []
    for caller_seed in (0, 1):
        model = wrap_lora(make_tiny(0), LoraConfig(r=8, dropout=0.3))  # dropout: the RNG matters
        torch.manual_seed(caller_seed)
        before = torch.get_rng_state()
        runs.append(fresh_adapt(model, tokenizer, samples_of(flip_task), cfg).losses)
        assert torch.equal(torch.get_rng_state(), before)
    assert runs[0] == runs[1]
    other = fresh_adapt(wrap_lora(make_tiny(0), LoraConfig(r=8, dropout=0.3)), tokenizer, samples_of(flip_task), cfg.model_copy(update={"seed": 4}))
    assert other.losses != runs[0]


def oom_above(model, max_tokens: int) -> list[int]:
    """A device with room for `max_tokens` padded tokens per forward: a larger micro-batch raises the CUDA
    allocator's error from inside the real forward. Returns the padded sizes of the forwards that ran."""
    sizes: list[int] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids.numel() > max_tokens:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {ids.numel()} > {max_tokens} tokens)")
        sizes.append(ids.numel())

    model.get_base_model().get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    return sizes


def test_out_of_memory_halves_the_micro_batch_tokens_and_training_goes_on(model, tokenizer, flip_task):
    samples = samples_of(flip_task)
    longest = max(len(e.input_ids) for e in encode_samples(tokenizer, samples, 4096)[0])
    sizes = oom_above(model, 2 * longest)
    cfg = TrainConfig(steps=6, lr=1e-2, batch_tokens=8 * longest)
    result = fresh_adapt(model, tokenizer, samples, cfg)
    assert result.stopped_by == "steps" and result.steps == 6 and all(np.isfinite(result.losses))
    assert result.out_of_memory == 2 and result.batch_tokens == 2 * longest  # 8x -> 4x -> 2x the longest sample
    assert max(sizes) <= 2 * longest
    assert all(p.grad is None for p in lora_parameters(model))  # nothing of the abandoned steps is left behind


def test_out_of_memory_with_one_sample_per_micro_batch_ends_training_not_the_task(model, tokenizer, flip_task):
    oom_above(model, 1)
    result = fresh_adapt(model, tokenizer, samples_of(flip_task), TrainConfig(steps=4, batch_tokens=4096))
    assert (result.steps, result.stopped_by) == (0, "out_of_memory") and result.out_of_memory >= 2
    assert not model.training  # the loop's cleanup ran


def test_the_optimizer_state_is_freed_before_sampling(model, tokenizer, flip_task):
    from ttt.train import LocalRunner

    runner = LocalRunner()
    reset_adapter(model, 0)
    adapt(model, tokenizer, samples_of(flip_task, 4), TrainConfig(steps=2, lr=1e-2), runner=runner)
    assert not runner.optimizer.state, "AdamW moments outlive training"
    assert all(p.grad is None for p in lora_parameters(model))
