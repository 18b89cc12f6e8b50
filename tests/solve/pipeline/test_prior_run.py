"""A run with `model.adapter` starts every task from the prior, not from the previous task's adapter."""

from __future__ import annotations

import numpy as np
import torch

from augment.tasks import load_dataset, small_tasks
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import Engine, solve_task
from ttt.config import LoraConfig
from ttt.lora import lora_parameters, save_adapter, wrap_lora
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item


def test_each_task_starts_from_the_prior(tmp_path):
    overrides = ["model.source=random:tiny", "lora.r=4", "lora.alpha=8", "train.steps=3", "train.lr=0.05", "solve.mode=grid",
                 "solve.grid_views=1", "solve.score_views=1", "augment.n_samples=4", "train.max_seq_len=1024", "train.batch_tokens=1024"]
    cfg = load_config(None, overrides)
    base = Engine.load(cfg)
    with torch.no_grad():
        for i, p in enumerate(lora_parameters(base.model)):
            p.copy_(torch.full_like(p, 0.02 * ((i % 5) + 1)))
    save_adapter(base.model, tmp_path / "prior")
    cfg = load_config(None, overrides + [f"model.adapter={tmp_path / 'prior'}"])
    engine = Engine.load(cfg)
    first, second = small_tasks(load_dataset("arc-agi-1/evaluation").tasks, 2)
    solve_task(first, cfg, engine, None)  # trains the adapter away from the prior
    rec = solve_task(second, cfg, engine, None)
    fresh = Engine.load(cfg)  # the prior, untouched
    items = [grid_scoring_item(fresh.tokenizer, second.train, x, y) for x, y in zip(second.test_inputs, second.test_outputs)]
    expected = float(np.mean(target_nll(fresh.model, fresh.tokenizer, items)))
    assert rec["stages"]["ttt"]["nll_before"] == expected  # measured right after the reset: exactly the prior


def test_prior_weights_survive_wrapping(tmp_path, make_tiny):
    model = wrap_lora(make_tiny(0), LoraConfig(r=4, alpha=8))
    save_adapter(model, tmp_path / "p")
    again = wrap_lora(make_tiny(0), LoraConfig(r=4, alpha=8), tmp_path / "p")
    assert all(torch.equal(a, b) for a, b in zip(lora_parameters(model), lora_parameters(again)))
