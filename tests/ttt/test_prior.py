"""A prior adapter (`model.adapter`): loaded into the LoRA, the reset point between tasks, shape-checked."""

from __future__ import annotations

import pytest
import torch

from ttt.config import LoraConfig
from ttt.lora import AdapterError, lora_parameters, reset_adapter, save_adapter, wrap_lora


def lora_state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def make_prior(make_tiny, path, cfg: LoraConfig):
    model = wrap_lora(make_tiny(0), cfg)
    with torch.no_grad():
        for i, p in enumerate(lora_parameters(model)):
            p.copy_(torch.full_like(p, 0.01 * (i + 1)))  # B non-zero: the prior changes the model's output
    save_adapter(model, path)
    return lora_state(model)


def test_every_reset_returns_to_the_prior(make_tiny, tmp_path):
    cfg = LoraConfig(r=4, alpha=8)
    prior = make_prior(make_tiny, tmp_path / "prior", cfg)
    model = wrap_lora(make_tiny(0), cfg, tmp_path / "prior")
    assert all(torch.equal(v, prior[n]) for n, v in lora_state(model).items())
    with torch.no_grad():
        for p in lora_parameters(model):
            p.add_(1.0)  # what a task's training does
    reset_adapter(model, seed=123)
    assert all(torch.equal(v, prior[n]) for n, v in lora_state(model).items())
    ids = torch.tensor([[1, 2, 3]])
    plain = wrap_lora(make_tiny(0), cfg)
    reset_adapter(plain, 0)
    assert not torch.allclose(model(input_ids=ids).logits, plain(input_ids=ids).logits)  # the prior is in force


@pytest.mark.parametrize("other", [LoraConfig(r=8, alpha=8), LoraConfig(r=4, alpha=16), LoraConfig(r=4, alpha=8, target_modules=["q_proj"])])
def test_a_prior_of_another_shape_is_refused(make_tiny, tmp_path, other):
    make_prior(make_tiny, tmp_path / "prior", LoraConfig(r=4, alpha=8))
    with pytest.raises(AdapterError, match="does not match"):
        wrap_lora(make_tiny(0), other, tmp_path / "prior")


def test_a_prior_made_for_a_model_of_another_width_is_refused(tokenizer, tmp_path):
    """Same lora section, other hidden size (the shipped SmolLM2 prior on a random model of another shape): a clear
    AdapterError naming the adapter, not torch's wall of size mismatches."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import TINY, build_tiny

    cfg = LoraConfig(r=4, alpha=8)
    wide = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                        **(TINY | {"hidden_size": TINY["hidden_size"] * 2})))
    save_adapter(wrap_lora(wide, cfg), tmp_path / "wide")
    with pytest.raises(AdapterError, match=r"wide: the prior adapter was made for a model of another shape .*model.adapter=null"):
        wrap_lora(build_tiny(tokenizer), cfg, tmp_path / "wide")


def test_a_directory_that_is_no_adapter_is_refused(make_tiny, tmp_path):
    with pytest.raises(AdapterError, match="not an adapter directory"):
        wrap_lora(make_tiny(0), LoraConfig(r=4), tmp_path)


def test_the_shipped_prior_fits_the_demo_config():
    """configs/cpu-demo.yaml names the committed prior; its shape must match the demo's lora section."""
    from pathlib import Path

    from solve.pipeline.runconfig import load_config
    from ttt.lora import check_prior, resolve_adapter_dir

    cfg = load_config("configs/cpu-demo.yaml")
    folder = resolve_adapter_dir(cfg.model.adapter)
    check_prior(folder, cfg.lora)
    assert (folder / "MODEL_CARD.md").is_file()
    assert sum(f.stat().st_size for f in Path(folder).iterdir()) < 20_000_000  # small enough for git
