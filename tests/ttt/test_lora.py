"""LoRA wrapping: exact trainable count, deterministic in-place reset, base weights never change."""

from __future__ import annotations

import numpy as np
import torch

from augment.loo import build_samples
from augment.sets import get_set
from ttt.config import LoraConfig, TrainConfig
from ttt.lora import lora_parameters, reset_adapter, trainable_parameter_count, wrap_lora
from ttt.train import adapt


def lora_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def base_state(model) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in model.state_dict().items() if "lora_" not in n}


def test_trainable_count_matches_shapes_by_hand(tiny):
    r = 8
    model = wrap_lora(tiny, LoraConfig(r=r))
    # hidden 64, 4 heads x 16 -> q/o 64->64; 2 kv heads x 16 -> k/v 64->32; MLP 64<->128. LoRA = r x (in + out).
    per_layer = r * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + (64 + 128) + (64 + 128) + (128 + 64))
    assert trainable_parameter_count(model) == 2 * per_layer
    assert sum(p.numel() for p in lora_parameters(model)) == 2 * per_layer
    only_qv = wrap_lora(type(tiny)(tiny.config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert trainable_parameter_count(only_qv) == 2 * 4 * ((64 + 64) + (64 + 32))


def test_reset_restores_fresh_state_and_keeps_base_bit_identical(tiny, tokenizer, flip_task):
    base_before = base_state(tiny)
    model = wrap_lora(tiny, LoraConfig(r=4))
    reset_adapter(model, seed=3)
    fresh = lora_state(model)
    assert all(torch.count_nonzero(v) == 0 for n, v in fresh.items() if "lora_B" in n)  # B = 0: model == base
    samples, _ = build_samples(flip_task, get_set("geometric"), 4, np.random.default_rng(0))
    adapt(model, tokenizer, samples, TrainConfig(steps=3, lr=1e-2, warmup_steps=0))
    trained = lora_state(model)
    assert any(not torch.equal(trained[n], fresh[n]) for n in fresh)
    reset_adapter(model, seed=3)
    assert all(torch.equal(v, fresh[n]) for n, v in lora_state(model).items())
    reset_adapter(model, seed=4)
    assert any(not torch.equal(v, fresh[n]) for n, v in lora_state(model).items() if "lora_A" in n)
    after = {n.replace("base_model.model.", "").replace(".base_layer", ""): t for n, t in base_state(model).items()}
    assert after.keys() == base_before.keys()
    assert all(torch.equal(after[n], base_before[n]) for n in base_before)


def test_reset_leaves_global_rng_alone(tiny):
    model = wrap_lora(tiny, LoraConfig(r=4))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    reset_adapter(model, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_fresh_adapter_computes_the_base_model(make_tiny, tokenizer):
    ids = torch.tensor([tokenizer.encode("3x3\n012\n345")])
    with torch.inference_mode():
        expected = make_tiny(0)(input_ids=ids).logits
        model = wrap_lora(make_tiny(0), LoraConfig(r=4))
        reset_adapter(model, seed=9)
        assert torch.equal(model(input_ids=ids).logits, expected)
