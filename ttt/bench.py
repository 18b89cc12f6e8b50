"""Training throughput of one LoRA TTT step: tokens/s, seconds per step and (on GPU) MFU.

Runs the real `ttt.train.train_step` (forward, backward, AdamW step) on random token ids with loss
on every position, for the embedded model, any model source, or a randomly initialised model
built from a config dict (no weight files; presets for Qwen2.5 0.5B/1.5B/7B shapes).

MFU formula (stated, approximate): FLOPs per trained token = 4 x N, where N = parameters of all
matmul weights (every nn.Linear incl. the LM head; embeddings lookups excluded): 2N for the
forward, 2N for gradients w.r.t. activations in the backward; a frozen base gets no weight
gradients (that would be another 2N), and LoRA and attention-score FLOPs are ignored. Peak: the
dense bf16 spec (H100/H200 SXM 989 TFLOP/s, A100 312, L4 121), or --peak-tflops / ARC_TTT_PEAK_TFLOPS.

    python -m ttt.bench --seq-lens 512 1024
    python -m ttt.bench --preset qwen2.5-1.5b --seq-lens 2048 4096 --batch-size 1
    python -m ttt.bench --config my_config.json --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ttt.config import LoraConfig, ModelConfig
from ttt.lora import lora_parameters, reset_adapter, trainable_parameter_count, wrap_lora
from ttt.models import RANDOM_PRESETS, load_model, pick_device, pick_dtype
from ttt.nll import collate
from ttt.prompts import IGNORE
from ttt.train import set_checkpointing, train_step

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "T4": 65.0}

PRESETS = RANDOM_PRESETS


def peak_tflops_for(device: torch.device, override: float | None = None) -> float | None:
    if override is not None:
        return override
    if os.environ.get("ARC_TTT_PEAK_TFLOPS"):
        return float(os.environ["ARC_TTT_PEAK_TFLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def build_model(model: str | dict[str, Any], device: torch.device, dtype: torch.dtype) -> Any:
    """A model from a source (ttt.models) or randomly initialised from a config dict, on `device`."""
    if isinstance(model, str) and model not in PRESETS:
        loaded, _ = load_model(ModelConfig(source=model, device=str(device), dtype=str(dtype).removeprefix("torch.")))
        return loaded
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(PRESETS[model] if isinstance(model, str) else model)
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    with torch.device(device):  # initialise directly on the GPU: a 7B init on CPU takes minutes
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def matmul_params(model: Any) -> int:
    """Weights of every nn.Linear (call before wrapping with LoRA); a tied LM head counts once, as a matmul."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def _time_steps(model: Any, batch: Any, optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> float:
    def step() -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    device = batch.input_ids.device
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        train_step(model, [batch], lambda loss: loss.backward(), step)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def run_benchmark(
    model: str | dict[str, Any] = "smollm2-135m",
    seq_lens: Sequence[int] = (512, 1024),
    batch_size: int = 1,
    steps: int = 3,
    warmup: int = 1,
    lora: LoraConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    peak_tflops: float | None = None,
    threads: int | None = None,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """Seconds per LoRA training step and tokens/s at each sequence length (and MFU on GPU)."""
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    net = build_model(model, dev, pick_dtype(dtype, dev))
    n_matmul = matmul_params(net)
    n_total = sum(p.numel() for p in net.parameters())
    net = wrap_lora(net, lora or LoraConfig())
    reset_adapter(net, 0)
    set_checkpointing(net, gradient_checkpointing)
    net.train()
    optimizer = torch.optim.AdamW(lora_parameters(net), lr=1e-4)
    peak = peak_tflops_for(dev, peak_tflops)
    vocab = net.get_base_model().config.vocab_size
    gen = torch.Generator().manual_seed(0)
    rows = []
    for seq_len in seq_lens:
        ids = torch.randint(100, vocab - 100, (batch_size, seq_len), generator=gen).tolist()
        batch = collate([(r, [IGNORE] + r[1:]) for r in ids], pad_id=0).to(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        s = _time_steps(net, batch, optimizer, steps, warmup)
        tokens_per_s = batch_size * seq_len / s
        row: dict[str, Any] = {"seq_len": seq_len, "batch_size": batch_size, "s_per_step": s, "tokens_per_s": tokens_per_s}
        if peak:
            row["mfu"] = tokens_per_s * 4 * n_matmul / (peak * 1e12)
        if dev.type == "cuda":
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        rows.append(row)
    return {
        "model": model if isinstance(model, str) else "config dict",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(next(net.get_base_model().parameters()).dtype),
        "params": n_total,
        "matmul_params": n_matmul,
        "trainable_params": trainable_parameter_count(net),
        "peak_tflops": peak,
        "flops_per_token": "4 x matmul_params (frozen base: forward 2N + activation grads 2N)",
        "results": rows,
    }


def _render(report: dict[str, Any]) -> str:
    head = (f"{report['model']} on {report['device']}, {report['dtype']}: {report['params'] / 1e6:.0f}M params "
            f"({report['matmul_params'] / 1e6:.0f}M in matmuls), LoRA {report['trainable_params'] / 1e6:.2f}M trainable")
    lines = [head, f"{'seq_len':>8} {'batch':>5} {'s/step':>8} {'tok/s':>9} {'MFU':>6}"]
    for r in report["results"]:
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "-"
        lines.append(f"{r['seq_len']:>8} {r['batch_size']:>5} {r['s_per_step']:>8.2f} {r['tokens_per_s']:>9.0f} {mfu:>6}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default="smollm2-135m", help="model source (name, HF dir, Kaggle dir, .gguf)")
    src.add_argument("--preset", choices=sorted(PRESETS), help="random-init model with these shapes")
    src.add_argument("--config", help="JSON file (or inline JSON) of a HF config dict with model_type; random init")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--peak-tflops", type=float)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    model: str | dict[str, Any] = a.preset or a.model
    if a.config:
        text = Path(a.config).read_text() if Path(a.config).is_file() else a.config
        model = json.loads(text)
    report = run_benchmark(model, a.seq_lens, a.batch_size, a.steps, a.warmup, LoraConfig(r=a.rank, alpha=2 * a.rank),
                           a.device, a.dtype, a.peak_tflops, a.threads, a.gradient_checkpointing)
    print(json.dumps(report, indent=2) if a.json else _render(report))


if __name__ == "__main__":
    main()
