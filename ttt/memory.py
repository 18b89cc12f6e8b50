"""Memory arithmetic of a causal LM's shape, shared by the decoder (how many rows fit) and the planner
(`solve.experiments.memory_plan`): bytes per KV-cache token, and the device memory free to use now."""

from __future__ import annotations

from typing import Any

# Share of free device memory the KV cache of one decode group may take: the rest is the step's
# activations, the last position's logits and the allocator's fragmentation.
KV_SHARE_OF_FREE = 0.5


def _get(config: Any, name: str, default: Any = None) -> Any:
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes the KV cache holds per token of one row: keys and values of every layer's KV heads.
    `config`: a transformers config or its dict (config.json)."""
    layers = _get(config, "num_hidden_layers")
    heads = _get(config, "num_attention_heads")
    kv_heads = _get(config, "num_key_value_heads") or heads
    head_dim = _get(config, "head_dim") or _get(config, "hidden_size") // heads
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def free_device_bytes(device: Any) -> int | None:
    """Bytes free for new tensors on a CUDA device (free memory plus the allocator's unused cache);
    None elsewhere (host memory is not ours to budget)."""
    import torch

    if getattr(device, "type", None) != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def rows_for_kv(model: Any, row_tokens: int, max_rows: int, kv_tokens: int) -> int:
    """Rows decoded together: at most `max_rows`, at most `kv_tokens` KV-cache tokens in all (rows x
    `row_tokens`, a row's prompt + answer), and on CUDA no more than `KV_SHARE_OF_FREE` of free memory.
    At least one."""
    rows = min(max_rows, kv_tokens // max(1, row_tokens))
    param = next(model.parameters(), None)
    free = free_device_bytes(param.device) if param is not None else None
    if free is not None:
        per_row = kv_bytes_per_token(model.config, param.element_size()) * row_tokens
        rows = min(rows, int(free * KV_SHARE_OF_FREE) // max(1, per_row))
    return max(1, rows)
