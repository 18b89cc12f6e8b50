"""One LoRA adapter per model, wrapped once and re-initialized in place for every task.

Reset choice: peft's own `reset_lora_parameters` under a fixed torch seed, rather than restoring a
saved initial state. It uses the same init as wrapping (A: Kaiming-uniform, B: zeros, so a reset
model computes exactly the base model), needs no copy of the adapter in memory, and a different
seed gives a different A for ensembles. Base weights are frozen and never written.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ttt.config import LoraConfig

ADAPTER = "default"


def wrap_lora(model: Any, cfg: LoraConfig) -> Any:
    """The model wrapped by peft with one trainable LoRA adapter (base weights frozen)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        use_rslora=cfg.use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    # autocast_adapter_dtype keeps LoRA weights in float32 under a bf16 base: stable small updates.
    return get_peft_model(model, peft_cfg, adapter_name=ADAPTER, autocast_adapter_dtype=True)


def lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


@torch.no_grad()
def reset_adapter(model: Any, seed: int) -> None:
    """Fresh LoRA weights, the same for the same seed; the global torch RNG is left as it was.

    Under ZeRO-3 (every rank must call this) the weights are gathered, re-initialized on rank 0 and
    re-partitioned from there: re-initializing the empty local shards would silently do nothing."""
    params = lora_parameters(model)
    # Weights on a GPU draw from that GPU's generator: fork (and seed) those too.
    devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    with gathered_for_update(params), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for layer in lora_layers(model):  # module order is fixed, so the draws are too
            layer.reset_lora_parameters(ADAPTER, init_lora_weights=True)


def zero3_partitioned(params: list[torch.nn.Parameter]) -> bool:
    """True when these weights are ZeRO-3 partitioned (DeepSpeed tags every such parameter with ds_id)."""
    return any(hasattr(p, "ds_id") for p in params)


def gathered_for_update(params: list[torch.nn.Parameter]) -> contextlib.AbstractContextManager:
    """Whole weights inside the block, rank 0's writes kept on exit (ZeRO-3); nothing to do otherwise."""
    if not zero3_partitioned(params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def lora_parameters(model: Any) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]


def trainable_parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
