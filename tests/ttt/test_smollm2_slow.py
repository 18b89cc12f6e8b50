"""The real embedded SmolLM2-135M: GGUF conversion + cache, and test-time training that helps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from augment.loo import build_samples
from augment.sets import get_set
from augment.tasks import load_dataset, select
from ttt.config import LoraConfig, ModelConfig, TrainConfig
from ttt.lora import reset_adapter, wrap_lora
from ttt.models import SOURCE_FILE, load_model, resolve_model
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item
from ttt.train import adapt

pytestmark = pytest.mark.slow


def test_embedded_model_converts_once_then_loads_from_cache(tmp_path):
    t0 = time.monotonic()
    first = resolve_model("smollm2-135m", cache_dir=tmp_path)
    convert_s = time.monotonic() - t0
    assert first.kind == "embedded" and first.model_dir.parent == tmp_path
    assert {p.name for p in tmp_path.iterdir()} == {first.model_dir.name}  # no temp dir left behind
    assert {"config.json", "model.safetensors", "tokenizer.json", SOURCE_FILE} <= {p.name for p in first.model_dir.iterdir()}
    t0 = time.monotonic()
    model, tok = load_model(ModelConfig(cache_dir=str(tmp_path), device="cpu"))
    reload_s = time.monotonic() - t0
    assert resolve_model("smollm2-135m", cache_dir=tmp_path) == first
    assert "quantization_config" not in model.config.to_dict()  # a plain model: save_pretrained works
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert reload_s < convert_s / 3, (reload_s, convert_s)
    assert tok.decode(tok.encode("3x3\n012", add_special_tokens=False)) == "3x3\n012"


def test_a_few_ttt_steps_lower_the_nll_of_the_held_out_answer(smol_dir):
    task = select(load_dataset("arc-agi-1/training").tasks, ["68b16354"])[0]  # answer: flip upside down
    model, tok = load_model(ModelConfig(device="cpu"))
    model = wrap_lora(model, LoraConfig(r=16, alpha=32))
    samples, _ = build_samples(task, get_set("geometric"), 8, np.random.default_rng(0))
    item = grid_scoring_item(tok, task.train, task.test_inputs[0], task.test_outputs[0])
    reset_adapter(model, 0)
    before = target_nll(model, tok, [item])[0]
    result = adapt(model, tok, samples, TrainConfig(steps=8, lr=1e-3, warmup_steps=1, batch_tokens=512))
    after = target_nll(model, tok, [item])[0]
    print(f"NLL {before:.3f} -> {after:.3f} after {result.steps} steps, {result.seconds:.1f}s, {result.tokens_per_s:.0f} tok/s")
    assert result.steps == 8 and result.samples["kept"] == 8
    assert after < before - 0.05
