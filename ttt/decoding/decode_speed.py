"""Two fixes for the cost of a decode step that are not the model's: the matmul kernel MKL picks for a
few rows, and the KV cache copied in full at every step.

Measured on the 2-core CPU (SmolLM2-135M, prompts of ~250 tokens; `python bench/decode_step.py`):
- `F.linear(x, W)` with 2-32 rows of `x` runs MKL's small-M GEMM at 3-4 GB/s of weights, while
  `W @ x.T` (the same product, computed as a GEMV-like N x K by K x M) runs at 6-10 GB/s: 1.5-3.5x per
  projection, and a decode step is nothing but projections. So, on a CPU, every `nn.Linear` of the model
  computes `(W @ x.T).T` while decoding a few rows (prefills, many rows, keep `F.linear`). The result is
  the same product summed in another order: equal to ~1e-6 relative, not bit for bit.
- transformers' `DynamicLayer.update` concatenates the whole cache with the new token, per layer, per
  step: at 16 rows and 400 tokens that is 250 MB copied per step. `grow_in_place` gives each layer a
  buffer with room for the new tokens, so a step writes one position.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Iterator

import torch
from transformers.cache_utils import DynamicLayer

# Rows of `x` up to which `W @ x.T` beats `F.linear` on MKL (measured 2-32; prefills are far above it).
SMALL_ROWS = 64


def _small_rows_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1] if x.dim() else 0
    if rows == 0 or rows > SMALL_ROWS or x.dtype != self.weight.dtype:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    y = torch.mm(self.weight, x.reshape(rows, x.shape[-1]).t()).t().contiguous()
    if self.bias is not None:
        y += self.bias
    return y.reshape(*x.shape[:-1], y.shape[-1])


@contextlib.contextmanager
def small_rows_linears(model: Any) -> Iterator[int]:
    """While decoding on a CPU: every `nn.Linear` of `model` computes few-row products as `W @ x.T`.
    Yields how many modules were switched (0 on other devices, where cuBLAS needs no help)."""
    first = next(model.parameters(), None)
    if first is None or first.device.type != "cpu":
        yield 0
        return
    switched = [m for m in model.modules() if type(m) is torch.nn.Linear and "forward" not in m.__dict__]
    for m in switched:
        m.forward = types.MethodType(_small_rows_linear, m)
    try:
        yield len(switched)
    finally:
        for m in switched:
            del m.forward


class _RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of a buffer with room for the tokens still to
    come (`left`, counted down by each update): an update writes into the buffer instead of
    concatenating. When rows leave the batch the kept rows move into a new buffer sized for them and the
    old one is dropped at once (the parent's selection would keep both, plus the copy a later update makes).
    Everything else (repeat, crop) is the parent's, which assigns plain tensors: the next update moves
    them into a new buffer."""

    left: int = 0

    def _room(self, current: torch.Tensor, buf: torch.Tensor | None, extra: int) -> torch.Tensor:
        n = current.shape[-2]
        if (buf is not None and current.data_ptr() == buf.data_ptr() and current.shape[:-2] == buf.shape[:-2]
                and current.stride() == buf.stride() and n + extra <= buf.shape[-2]):
            return buf
        fresh = current.new_empty((*current.shape[:-2], n + max(extra, self.left), current.shape[-1]))
        fresh[..., :n, :] = current
        return fresh

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized or self.keys.numel() == 0:
            return super().update(key_states, value_states, *args, **kwargs)
        n, t = self.keys.shape[-2], key_states.shape[-2]
        self._kbuf = self._room(self.keys, getattr(self, "_kbuf", None), t)
        self._vbuf = self._room(self.values, getattr(self, "_vbuf", None), t)
        self._kbuf[..., n : n + t, :] = key_states
        self._vbuf[..., n : n + t, :] = value_states
        self.keys, self.values = self._kbuf[..., : n + t, :], self._vbuf[..., : n + t, :]
        self.left = max(0, self.left - t)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if not self.is_initialized or getattr(self, "_kbuf", None) is None or self.keys.data_ptr() != self._kbuf.data_ptr():
            return super().batch_select_indices(indices)
        n, keep = self.keys.shape[-2], indices.tolist()
        for name in ("k", "v"):
            current = self.keys if name == "k" else self.values
            fresh = current.new_empty((len(keep), *current.shape[1:-2], n + self.left, current.shape[-1]))
            for row, old in enumerate(keep):  # row by row: no temporary of the selection besides the new buffer
                fresh[row, ..., :n, :] = current[old]
            setattr(self, f"_{name}buf", fresh)
            del current
            if name == "k":
                self.keys = fresh[..., :n, :]
            else:
                self.values = fresh[..., :n, :]


def grow_in_place(cache: Any, spare: int) -> int:
    """Give every plain `DynamicLayer` of `cache` room for `spare` more positions, the most it will get
    (sliding-window and static layers are left alone). Returns how many layers were changed."""
    changed = 0
    for layer in getattr(cache, "layers", ()):
        if type(layer) in (DynamicLayer, _RoomyLayer):
            layer.__class__ = _RoomyLayer
            layer.left = spare
            changed += 1
    return changed
