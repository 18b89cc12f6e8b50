"""`arc-ttt plan`: each stage's predicted peak GPU and host memory for a config's model on a target
device, before a Kaggle submission is spent, and what to change when it does not fit.

The formulas follow what the code allocates (the stages of `solve.pipeline.stages` through `ttt`):
- weights: parameters x dtype bytes (from the model's shape: its config.json or a `random:` preset);
- training (`ttt.train`): + the LoRA's fp32 weights, gradients and AdamW moments (16 bytes a weight),
  + activations of one micro-batch (max(train.batch_tokens, train.max_seq_len) tokens: a longer sample
  goes alone): with activation checkpointing every layer's input plus one layer's activations (its
  recomputation and backward), else every layer's, + the loss (`ttt.nll.head_nll`: a few chunks of
  logits, the labelled positions' hidden states);
- sampling (`ttt.decoding.decode`): + the KV cache of the rows decoded together (`ttt.memory.rows_for_kv`: the
  row cap, the KV-token budget, half the memory left), + a prefill piece's activations, + the draft's
  vocabulary-wide distributions once per prompt, + one layer's buffer while rows leave;
- scoring (`ttt.nll.target_nll`): + one forward of 8192 tokens (or a longer sample) and the loss chunks;
- host: each worker process (torch and the CUDA libraries), the prior's CPU copy, the sandbox.
The per-token coefficients were checked against peaks measured on the CPU for small shapes
(tests/solve/experiments/test_memory_plan.py: training with and without checkpointing, sampling).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ttt.memory import KV_SHARE_OF_FREE, kv_bytes_per_token

GIB = 2**30
LOSS_CHUNK_BYTES = 2**23 * 4  # ttt.nll.LOSS_CHUNK_LOGITS in fp32 (not imported: that module imports torch)
LOSS_CHUNKS_LIVE = 3  # logits, log-softmax and its gradient of one chunk (measured ~3x on the CPU)
SCORE_TOKENS = 8192  # ttt.decoding.sample.score_grids' batch_tokens
DRAFT_TOKENS = 26  # the program header's tokens (solve.program_draft) checked in one block
CUDA_CONTEXT = 0.6 * GIB  # CUDA context + cuBLAS workspaces per process, outside torch's allocator
HOST_WORKER = 2.5 * GIB  # RSS of a worker process with torch, transformers and the CUDA libraries loaded
HOST_WORKER_CPU = 0.8 * GIB  # the same without CUDA
HOST_MAIN = 0.6 * GIB  # the main process of per_gpu (tasks, the run directory)
HOST_SANDBOX_PROCESS = 0.06 * GIB  # one sandbox worker (numpy + our DSL, preloaded)
# Activation elements a decoder layer keeps for backward per token, in units of the hidden size H and the
# MLP width I: norms, q/k/v/o inputs and outputs, attention output, gate/up/act/product (fit to CPU peaks).
ACT_H, ACT_I = 10, 4
# Transient elements of one layer's forward without gradients (inference), per token.
FWD_H, FWD_I = 4, 3


@dataclass(frozen=True)
class Device:
    name: str
    gpu_bytes: float  # per GPU, what torch can allocate
    gpus: int
    host_bytes: float  # the machine's RAM
    bf16: bool


DEVICES = {
    "l4": Device("Kaggle 4x NVIDIA L4 (22.0 GiB usable each, ~29 GiB host RAM)", 22.0 * GIB, 4, 29 * GIB, True),
    "t4": Device("Kaggle 2x NVIDIA T4 (14.5 GiB usable each, ~29 GiB host RAM; no bf16)", 14.5 * GIB, 2, 29 * GIB, False),
    "a100-80": Device("NVIDIA A100 80 GB (78 GiB usable)", 78 * GIB, 1, 200 * GIB, True),
    "h100": Device("NVIDIA H100 80 GB (78 GiB usable)", 78 * GIB, 1, 128 * GIB, True),
    "cpu": Device("this kind of CPU machine (host RAM only)", 0.0, 0, 16 * GIB, False),
}


class PlanError(ValueError):
    """A model shape or device the planner cannot use; the message says what to give instead."""


@dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool
    config: dict[str, Any]

    @classmethod
    def of(cls, config: dict[str, Any]) -> "Shape":
        missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
                   if k not in config]
        if missing:
            raise PlanError(f"the model config lacks {', '.join(missing)}: not a Llama/Qwen/Mistral-style causal LM config")
        heads = config["num_attention_heads"]
        return cls(config["vocab_size"], config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], heads,
                   config.get("num_key_value_heads") or heads, config.get("head_dim") or config["hidden_size"] // heads,
                   bool(config.get("tie_word_embeddings", False)), config.get("model_type") == "qwen2" or bool(config.get("attention_bias")),
                   config)

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection of one layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def parameters(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden
        if self.qkv_bias:
            per_layer += (self.heads + 2 * self.kv_heads) * self.head_dim
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * per_layer + embeddings + self.hidden

    def lora_parameters(self, r: int, targets: list[str]) -> int:
        return self.layers * sum(r * (a + b) for name, (a, b) in self.linears().items() if name in targets)


def model_config(source: str, cache_dir: str | None = None) -> dict[str, Any]:
    """The config dict of a model source: 'random:<preset | config.json | dir>', a HF model dir, a Kaggle
    dir (model/config.json), a config.json file, or the embedded model (converted once)."""
    from ttt.models import EMBEDDED, RANDOM_PREFIX, ModelResolutionError, random_spec, resolve_model

    try:
        if source.startswith(RANDOM_PREFIX):
            return random_spec(source)[0]
        path = Path(source).expanduser()
        if path.is_file() and path.suffix == ".json":
            return json.loads(path.read_text())
        if source in EMBEDDED or path.exists():
            return json.loads((resolve_model(source, cache_dir).model_dir / "config.json").read_text())
    except (ModelResolutionError, OSError, json.JSONDecodeError) as e:
        raise PlanError(f"model {source!r}: {e}") from None
    raise PlanError(f"model {source!r} is not on this machine: give its shape with --model random:qwen2.5-7b (a preset: "
                    "qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b), --model PATH/config.json or --model MODEL_DIR")


def _dtype_bytes(name: str, gpu: bool) -> int:
    if name == "auto":
        return 2 if gpu else 4
    return 4 if name == "float32" else 2


def train_activation_bytes(shape: Shape, tokens: int, checkpointing: bool, elem: int) -> float:
    """Activations of one micro-batch of `tokens` padded tokens, forward + backward, plus the loss."""
    layer = tokens * (ACT_H * shape.hidden + ACT_I * shape.intermediate) * elem
    loss = LOSS_CHUNKS_LIVE * LOSS_CHUNK_BYTES + 2 * tokens * shape.hidden * 4
    if checkpointing:  # every layer's input kept; the loss, then one layer recomputed at a time, on top
        return shape.layers * tokens * shape.hidden * elem + max(loss, layer)
    return shape.layers * layer + loss  # the loss runs while every layer's activations are kept


def sampling_bytes(shape: Shape, rows: int, row_tokens: int, per_prompt: int, prefill_tokens: int, elem: int, draft: bool) -> dict[str, float]:
    kv = rows * row_tokens * kv_bytes_per_token(shape.config, elem)
    prefill = min(prefill_tokens, max(1, rows // per_prompt) * row_tokens) * (FWD_H * shape.hidden + FWD_I * shape.intermediate) * elem
    prompts = max(1, rows // per_prompt)
    head = rows * shape.vocab * 4 * 2  # last-position logits and their softmax
    if draft:
        head += prompts * (DRAFT_TOKENS + 1) * shape.vocab * 4 * 4  # logits, nucleus sort (values + int64 order)
    return {"kv_cache": kv + kv / shape.layers, "prefill": prefill, "head": head}


def plan(cfg: Any, shape: Shape, device: Device) -> dict[str, Any]:
    """Each stage's predicted peak per GPU worker and on the host, against `device`, with advice."""
    gpu = device.gpus > 0
    elem = _dtype_bytes(cfg.model.dtype, gpu)
    act_elem = 2 if gpu else 4  # bf16 autocast on GPU
    mode = cfg.placement.mode
    workers = (cfg.placement.workers or device.gpus or 1) if mode == "per_gpu" else (device.gpus or 1) if mode == "deepspeed" else 1
    ranks = (cfg.placement.ranks or device.gpus or 1) if mode == "deepspeed" else 1
    zero3 = mode == "deepspeed" and cfg.placement.zero_stage == 3
    params = shape.parameters()
    weights = params * elem / (ranks if zero3 else 1)
    if zero3:  # one layer gathered whole at a time (plus the next, prefetched)
        weights += 2 * (params / shape.layers) * elem
    lora = shape.lora_parameters(cfg.lora.r, list(cfg.lora.target_modules))
    base = weights + (CUDA_CONTEXT if gpu else 0)
    tokens = max(cfg.train.batch_tokens, cfg.train.max_seq_len)
    stages: dict[str, dict[str, float]] = {}
    stages["load"] = {"weights": weights, "runtime": base - weights}
    stages["train"] = {**stages["load"], "lora_weights_grads_adamw": lora * 16,
                       "activations_and_loss": train_activation_bytes(shape, tokens, cfg.train.gradient_checkpointing, act_elem)}
    s = cfg.solve
    row_tokens = cfg.train.max_seq_len  # prompts are fitted so that prompt + answer cap <= max_seq_len
    free = (device.gpu_bytes - base - lora * 4) if gpu else None
    rows_cap = min(s.decode_rows, max(1, s.decode_kv_tokens // row_tokens))
    if free is not None:
        rows_cap = max(1, min(rows_cap, int(free * KV_SHARE_OF_FREE) // max(1, row_tokens * kv_bytes_per_token(shape.config, elem))))
    per_prompt = max(1, s.programs_per_view)
    stages["sample"] = {**stages["load"], "lora_weights": lora * 4,
                        **sampling_bytes(shape, rows_cap, row_tokens, min(per_prompt, rows_cap), s.prefill_tokens, act_elem, bool(s.program_draft))}
    score_tokens = max(SCORE_TOKENS, cfg.train.max_seq_len)
    stages["score"] = {**stages["load"], "lora_weights": lora * 4,
                       "forward": score_tokens * (FWD_H * shape.hidden + FWD_I * shape.intermediate) * act_elem
                       + score_tokens * kv_bytes_per_token(shape.config, elem) + LOSS_CHUNKS_LIVE * LOSS_CHUNK_BYTES}
    sandbox = cfg.sandbox.workers or 4
    per_worker_host = (HOST_WORKER if gpu else HOST_WORKER_CPU + params * elem) + lora * 4
    host = {"workers": workers * per_worker_host, "main": HOST_MAIN if mode == "per_gpu" else 0.0,
            "sandbox": workers * sandbox * HOST_SANDBOX_PROCESS if mode == "per_gpu" else sandbox * HOST_SANDBOX_PROCESS}
    host_total = sum(host.values())
    limit = device.gpu_bytes if gpu else device.host_bytes
    out_stages = {}
    for name, parts in stages.items():
        total = sum(parts.values())
        out_stages[name] = {"peak_gib": round(total / GIB, 2), "fits": total <= limit,
                            "parts_gib": {k: round(v / GIB, 3) for k, v in parts.items()}}
    out_stages["sample"]["rows"] = rows_cap
    advice = _advice(cfg, shape, device, stages, limit, gpu, host_total, act_elem, base, lora)
    return {
        "model": {"parameters": params, "layers": shape.layers, "hidden": shape.hidden, "vocab": shape.vocab,
                  "weight_bytes_each": elem, "lora_parameters": lora,
                  "kv_bytes_per_token": kv_bytes_per_token(shape.config, elem)},
        "device": asdict(device) | {"gpu_gib": round(device.gpu_bytes / GIB, 1), "host_gib": round(device.host_bytes / GIB, 1)},
        "placement": {"mode": mode, "workers": workers, "ranks": ranks, "zero3": zero3},
        "stages": out_stages,
        "host": {"peak_gib": round(host_total / GIB, 2), "fits": host_total <= device.host_bytes,
                 "parts_gib": {k: round(v / GIB, 2) for k, v in host.items()}},
        "fits": all(v["fits"] for v in out_stages.values()) and host_total <= device.host_bytes,
        "advice": advice,
    }


def _advice(cfg, shape, device, stages, limit, gpu, host_total, act_elem, base, lora) -> list[str]:
    out: list[str] = []
    if gpu and sum(stages["load"].values()) > limit:
        out.append(f"the weights alone ({sum(stages['load'].values()) / GIB:.1f} GiB) exceed one GPU ({limit / GIB:.1f} GiB): "
                   "placement.mode=deepspeed with placement.zero_stage=3 over the GPUs, or a smaller model")
        return out
    train = sum(stages["train"].values())
    if gpu and train > limit:
        if not cfg.train.gradient_checkpointing:
            out.append("train.gradient_checkpointing=true (keeps one layer's activations instead of every layer's)")
        room = limit - base - lora * 16
        fits = [t for t in (2**k for k in range(8, 17)) if train_activation_bytes(shape, t, True, act_elem) <= room]
        if fits:
            out.append(f"train.batch_tokens and train.max_seq_len <= {max(fits)} (with checkpointing)")
        else:
            out.append("even 256-token micro-batches do not fit: a smaller model or ZeRO-3 across GPUs")
    for name in ("sample", "score"):
        total = sum(stages[name].values())
        if gpu and total > limit:
            out.append(f"{name}: {total / GIB:.1f} GiB > {limit / GIB:.1f} GiB: lower train.max_seq_len (prompts are fitted to it)"
                       + (", solve.decode_kv_tokens or solve.prefill_tokens" if name == "sample" else ""))
    if host_total > device.host_bytes:
        out.append(f"host RAM: {host_total / GIB:.1f} GiB > {device.host_bytes / GIB:.0f} GiB: fewer placement.workers or "
                   "sandbox.workers")
    return out


def format_plan(p: dict[str, Any]) -> str:
    """The plan as a Markdown table with a verdict and the advice."""
    m, d = p["model"], p["device"]
    lines = [f"model: {m['parameters'] / 1e9:.2f}B parameters ({m['layers']} layers, hidden {m['hidden']}, vocab {m['vocab']}), "
             f"{m['weight_bytes_each']} bytes a weight, LoRA {m['lora_parameters'] / 1e6:.1f}M; device: {d['name']}; "
             f"placement: {p['placement']['mode']} x {p['placement']['workers']}",
             "", "| stage | predicted peak per GPU (GiB) | fits | largest parts (GiB) |", "|---|---|---|---|"]
    for name, st in p["stages"].items():
        parts = sorted(st["parts_gib"].items(), key=lambda kv: -kv[1])[:3]
        extra = f" ({st['rows']} rows)" if "rows" in st else ""
        lines.append(f"| {name}{extra} | {st['peak_gib']} | {'yes' if st['fits'] else '**no**'} | "
                     + ", ".join(f"{k} {v}" for k, v in parts) + " |")
    h = p["host"]
    lines.append(f"| host RAM (all workers) | {h['peak_gib']} | {'yes' if h['fits'] else '**no**'} | "
                 + ", ".join(f"{k} {v}" for k, v in h["parts_gib"].items()) + " |")
    lines.append("")
    lines.append("fits" if p["fits"] else "does NOT fit")
    lines += [f"- {a}" for a in p["advice"]]
    return "\n".join(lines)
