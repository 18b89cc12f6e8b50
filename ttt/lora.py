"""One LoRA adapter per model, wrapped once and re-initialized in place for every task.

Reset choice: peft's own `reset_lora_parameters` under a fixed torch seed, rather than restoring a
saved initial state. It uses the same init as wrapping (A: Kaiming-uniform, B: zeros, so a reset
model computes exactly the base model), needs no copy of the adapter in memory, and a different
seed gives a different A for ensembles. Base weights are frozen and never written.

With a prior adapter (`model.adapter`, made by `arc-ttt pretrain`) the reset point is the prior
instead: `load_prior` copies its weights in and keeps a CPU copy that every reset restores exactly.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from ttt.config import LoraConfig

ADAPTER = "default"
PRIOR_ATTR = "arc_ttt_prior"  # attribute on the peft model: {param name: CPU tensor} of the prior adapter
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(ValueError):
    """A prior adapter that cannot be used with this model or LoRA config."""


def wrap_lora(model: Any, cfg: LoraConfig, prior: str | Path | None = None) -> Any:
    """The model wrapped by peft with one trainable LoRA adapter (base weights frozen), starting from
    the `prior` adapter directory when given (see `load_prior`)."""
    wrapped = _wrap(model, cfg)
    if prior is not None:
        load_prior(wrapped, prior, cfg)
    return wrapped


def _wrap(model: Any, cfg: LoraConfig) -> Any:
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


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter directory as given, or, when relative and absent here, relative to the project root
    (so `model.adapter: ttt/priors/smollm2-135m` works from any working directory)."""
    folder = Path(path)
    if folder.is_absolute() or folder.exists():
        return folder
    shipped = Path(__file__).resolve().parents[1] / folder
    return shipped if shipped.exists() else folder


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    """The peft adapter_config.json of an adapter directory, with a clear error when it is not one."""
    folder = resolve_adapter_dir(path)
    cfg_file, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if not cfg_file.is_file() or not weights.is_file():
        raise AdapterError(f"{folder}: not an adapter directory (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    return json.loads(cfg_file.read_text())


def check_prior(path: str | Path, cfg: LoraConfig) -> None:
    """Refuse a prior whose shape differs from the LoRA config it must continue under."""
    saved = read_adapter_config(path)
    want = {"r": cfg.r, "lora_alpha": cfg.alpha, "target_modules": sorted(cfg.target_modules), "use_rslora": cfg.use_rslora}
    have = {"r": saved.get("r"), "lora_alpha": saved.get("lora_alpha"), "target_modules": sorted(saved.get("target_modules") or []),
            "use_rslora": saved.get("use_rslora", False)}
    diff = [f"{k}: prior {have[k]!r}, config {want[k]!r}" for k in want if have[k] != want[k]]
    if diff:
        raise AdapterError(f"{path}: the prior adapter does not match the lora section ({'; '.join(diff)})")


@torch.no_grad()
def load_prior(model: Any, path: str | Path, cfg: LoraConfig) -> None:
    """Copy the prior adapter's weights into `model`'s adapter and keep them as its reset point."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    check_prior(path, cfg)
    state = load_file(str(resolve_adapter_dir(path) / ADAPTER_WEIGHTS))
    params = dict(model.named_parameters())
    try:
        result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER)
    except RuntimeError as e:  # torch's size-mismatch message: the prior was made for a model of another shape
        if "size mismatch" not in str(e):
            raise
        first = str(e).split("size mismatch for", 1)[1].strip().splitlines()[0][:200]
        raise AdapterError(f"{path}: the prior adapter was made for a model of another shape ({first}); "
                           "use a prior made for this model, or model.adapter=null") from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise AdapterError(f"{path}: adapter weights do not fit this model (missing {missing[:3]}, unexpected {list(result.unexpected_keys)[:3]})")
    prior = {n: p.detach().to("cpu", copy=True) for n, p in params.items() if p.requires_grad and "lora_" in n}
    setattr(model, PRIOR_ATTR, prior)


def save_adapter(model: Any, path: str | Path) -> None:
    """The adapter only (adapter_config.json + adapter_model.safetensors), as `load_prior` reads it."""
    model.save_pretrained(str(path))


@torch.no_grad()
def reset_adapter(model: Any, seed: int) -> None:
    """Fresh LoRA weights, the same for the same seed; the global torch RNG is left as it was. With a
    prior (`load_prior`) the reset restores the prior's weights exactly and `seed` is not used.

    Under ZeRO-3 (every rank must call this) the weights are gathered, re-initialized on rank 0 and
    re-partitioned from there: re-initializing the empty local shards would silently do nothing."""
    params = lora_parameters(model)
    prior = getattr(model, PRIOR_ATTR, None)
    if prior is not None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        with gathered_for_update(params):
            for name, p in named:
                p.copy_(prior[name].to(p.device, p.dtype))
        return
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


def merge_is_exact(model: Any) -> bool:
    """Whether merging the adapter into the base weights keeps it: only in fp32. In bf16 (8 bits of
    mantissa) every delta entry below half a step of its weight is rounded away: at a delta of 1e-3 of
    the weight, 78 % of the entries (peft's own merge does the same)."""
    layers = lora_layers(model)
    return bool(layers) and all(layer.get_base_layer().weight.dtype == torch.float32 for layer in layers)


@contextlib.contextmanager
def merged_adapter(model: Any, enabled: bool = True) -> Any:
    """Inside the block the adapter is merged into the base weights (one matmul per layer instead of
    three: decode steps of a small model are dominated by per-layer overhead); on leaving, every base
    weight is restored bit for bit from a copy taken before the merge, on the weight's own device (peft's
    own unmerge subtracts the delta again, which leaves float rounding behind; a copy in host RAM would
    cost a 7B worker 13 GB there). Only where the merge is exact (`merge_is_exact`: fp32 weights, the CPU);
    bf16 models sample unmerged. A model that is not a peft model, has no LoRA layers or is already
    merged is left alone too."""
    layers = lora_layers(model) if enabled and hasattr(model, "merge_adapter") else []
    if not layers or any(layer.merged for layer in layers) or not merge_is_exact(model):
        yield model
        return
    backup = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    try:
        model.merge_adapter()
        yield model
    finally:
        model.unmerge_adapter()
        with torch.no_grad():
            for layer, weight in zip(layers, backup):
                layer.get_base_layer().weight.copy_(weight)
        del backup
