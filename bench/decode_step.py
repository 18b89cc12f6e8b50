"""Milliseconds per decode step of the demo model, by rows per step: transformers' own step against
`ttt.decoding.decode_speed` (few-row matmuls as W @ x.T, the KV cache written in place). Prints a Markdown table.

    .venv/bin/python bench/decode_step.py [--prompt-tokens 250] [--steps 12] [--rows 1,2,4,8,16,32]

Run it on an idle machine: other processes on the same cores distort every row."""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from solve.experiments.bench import DEMO_OVERRIDES
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import Engine
from ttt.decoding.decode import forward_step, prefill
from ttt.decoding.decode_speed import grow_in_place, small_rows_linears
from ttt.lora import merged_adapter


def step_ms(model, rows: int, prompt_tokens: int, steps: int, fast: bool) -> float:
    """Median milliseconds of one decode step of `rows` sequences after a shared prompt."""
    logits, mask, cache = prefill(model, [[5] * prompt_tokens], 0)
    cache.batch_repeat_interleave(rows)
    mask = mask.repeat_interleave(rows, 0)
    if fast:
        grow_in_place(cache, steps)
    lengths, nxt, times = mask.sum(-1), torch.full((rows, 1), 7), []
    for _ in range(steps):
        mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
        start = time.perf_counter()
        logits, cache = forward_step(model, nxt, mask, lengths[:, None], cache)
        times.append(time.perf_counter() - start)
        lengths = lengths + 1
    return 1000 * statistics.median(times[2:])  # the first steps pay allocation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=250)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rows", default="1,2,4,8,16,32")
    args = ap.parse_args()
    model = Engine.load(load_config(None, DEMO_OVERRIDES)).model
    print(f"decode step, demo model (adapter merged), {args.prompt_tokens}-token prompt, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| rows | transformers' step (ms) | fast step (ms) | speedup | tokens/s fast |")
    print("|---|---|---|---|---|")
    with merged_adapter(model), torch.no_grad():
        model.eval()
        for rows in map(int, args.rows.split(",")):
            plain = step_ms(model, rows, args.prompt_tokens, args.steps, False)
            with small_rows_linears(model):
                fast = step_ms(model, rows, args.prompt_tokens, args.steps, True)
            print(f"| {rows} | {plain:.0f} | {fast:.0f} | {plain / fast:.2f}x | {rows * 1000 / fast:.1f} |")


if __name__ == "__main__":
    main()
