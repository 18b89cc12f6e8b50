"""Peak host memory of one loss forward + backward at a large vocabulary: whole-batch logits (the loss
before `ttt.nll.head_nll`: logits for the union of answer positions x every row, then fp32) against
the chunked LM head at labelled positions only. A one-layer, 64-wide model keeps everything but the
head negligible, so the numbers are the loss's own. Prints one JSON line per variant.

    .venv/bin/python bench/loss_memory.py [--vocab 152064] [--rows 4] [--tokens 512] [--answer 0.5]

`--answer`: the share of each row's tokens that are answer tokens, each row's answer ending at a
different place (as in a micro-batch of samples of different lengths)."""

from __future__ import annotations

import argparse
import ctypes
import json

import torch


def _kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_mb(fn) -> float:
    """Peak RSS above the current RSS while `fn` runs (Linux: VmHWM reset through /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _kb("VmRSS")
    fn()
    return (_kb("VmHWM") - before) / 1024


def whole_logits_loss(model, batch) -> torch.Tensor:
    positions = (batch.labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(1)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=positions, use_cache=False).logits
    targets = batch.labels[:, positions + 1]
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets.clamp_min(0), reduction="none")
    return (nll * (targets != -100)).sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=152_064, help="vocabulary (Qwen2.5-7B: 152064)")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens", type=int, default=512, help="tokens per row")
    p.add_argument("--answer", type=float, default=0.5, help="share of a row's tokens that are answer tokens")
    args = p.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttt.config import LoraConfig
    from ttt.lora import wrap_lora
    from ttt.nll import LOSS_CHUNK_LOGITS, answer_token_nll, collate

    ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)  # M_MMAP_THRESHOLD: freed tensors leave RSS, so peaks are live tensors
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    model = wrap_lora(LlamaForCausalLM(cfg), LoraConfig(r=4))
    rows = []
    for r in range(args.rows):  # answers of equal length ending at different places: the union is wider than each
        ids = torch.randint(0, args.vocab, (args.tokens - r * 7,)).tolist()
        n = max(1, int(len(ids) * args.answer))
        rows.append((ids, [-100] * (len(ids) - n) + ids[-n:]))
    batch = collate(rows, 0)
    union = int((batch.labels[:, 1:] != -100).any(dim=0).sum())
    variants = {
        "whole_logits": lambda: whole_logits_loss(model, batch).backward(),
        "chunked_head": lambda: answer_token_nll(model, batch)[0].sum().backward(),
    }
    variants["chunked_head"]()  # warm-up: one-time allocations
    for name, fn in variants.items():
        mb = peak_mb(fn)
        print(json.dumps({"loss": name, "vocab": args.vocab, "rows": args.rows, "answer_tokens": batch.n_answer,
                          "union_positions": union, "peak_mb": round(mb, 1),
                          "whole_logits_fp32_mb": round(args.rows * union * args.vocab * 4 / 2**20, 1),
                          "chunk_mb": round(LOSS_CHUNK_LOGITS * 4 / 2**20, 1)}))


if __name__ == "__main__":
    main()
