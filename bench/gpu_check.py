"""The GPU check: one Markdown table of what a GPU does with our code, in at most ~8 minutes on one GPU.

Random-weight models of real shapes (Qwen2.5 0.5B, 1.5B, 7B: the weights do not change the speed):
- TTT: tokens/s, seconds and MFU of a LoRA training step (`ttt.bench`), peak GPU memory;
- sampling: tokens/s of transformers' `generate` with the adapter unmerged against the batched
  decoder (`ttt.decode`) unmerged and merged, the same prompts (8 prompts x 4 samples);
- grid search: forwards/s of the threshold search (`ttt.grid_search`) with a full frontier;
- per_gpu: tasks/hour of 2 workers against 1 on the one device (`bench/placement_bench.py`);
- pretrain: `arc-ttt pretrain` a few steps on the device: the LoRA prior in one process and under
  deepspeed (1 rank), the full model with fp32 master weights.

    bash bench/gpu_check.sh                 # on a GPU machine: writes docs/gpu_check.md
    bash bench/gpu_check.sh --dry           # CPU, the tiny model, seconds (CI runs this so it never rots)

Random models produce random text: no stop rule fires, every sequence runs to its token cap, so
tokens/s compare like with like.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_row(preset: str, device: torch.device, dtype: torch.dtype, prompts: int, per_prompt: int, prompt_len: int,
                 new_tokens: int) -> dict[str, Any]:
    """Tokens/s of the three sampling paths on the same random prompts."""
    from ttt.bench import build_model
    from ttt.config import LoraConfig
    from ttt.decode import sample
    from ttt.lora import lora_parameters, merged_adapter, wrap_lora

    model = wrap_lora(build_model(preset, device, dtype), LoraConfig(r=16, alpha=32))
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.01)  # B starts at zero: a merge must have something to merge
    model.eval()
    vocab = model.get_base_model().config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, vocab - 100, (prompts, prompt_len), generator=gen).tolist()
    row: dict[str, Any] = {"model": preset, "prompts": prompts, "per_prompt": per_prompt, "prompt_len": prompt_len,
                           "new_tokens": new_tokens}

    def timed(fn) -> float:
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start

    def hf() -> None:
        with torch.no_grad():
            for i in range(0, prompts, 2):  # 2 prompts x 4 samples per call: the old path's batch of 8
                x = torch.tensor(ids[i : i + 2], device=device)
                model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               do_sample=True, temperature=0.8, top_p=0.95, num_return_sequences=per_prompt, pad_token_id=0)

    def batched() -> None:
        sample(model, _NoText(), ids, per_prompt, new_tokens, 0.8, 0.95, 0, [], 0, max_rows=prompts * per_prompt)

    total = prompts * per_prompt * new_tokens
    batched()  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    row["generate_unmerged"] = total / timed(hf)
    row["batched_unmerged"] = total / timed(batched)
    with merged_adapter(model):
        row["batched_merged"] = total / timed(batched)
    row["speedup"] = row["batched_merged"] / row["generate_unmerged"]
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    row["search"] = search_row(model, device, prompt_len, ids[0])
    return row  # the model goes with this frame; the caller empties the CUDA cache


class _NoText:
    """Stands in for a tokenizer where no stop rule reads text (random models write random ids)."""

    def decode(self, ids, skip_special_tokens=False):
        return ""


def search_row(model: Any, device: torch.device, prompt_len: int, prompt: list[int], rows: int = 32, steps: int = 32) -> dict[str, Any]:
    """The threshold search with its frontier held full (`rows` live prefixes, a threshold no path falls
    below): forwards/s and prefixes advanced per second."""
    from ttt.grid_search import GridGrammar, search_grids

    grammar = GridGrammar(_Digits(), [10])
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        found = search_grids(model, _Digits(), grammar, prompt, 0, 1e-300, steps, max_rows=rows)
    _sync(device)
    s = time.perf_counter() - start
    return {"forwards": found.forwards, "seconds": s, "forwards_per_s": found.forwards / s, "rows_per_s": found.forwards * rows / s}


class _Digits:
    """A vocabulary whose first tokens are the grid's characters (ids 0-9 digits, 10 end, 11 'x', 12 newline)."""

    chars = [str(d) for d in range(10)] + ["<end>", "x", "\n"]

    def __len__(self) -> int:
        return len(self.chars)

    def decode(self, ids, skip_special_tokens=False) -> str:
        return "".join(self.chars[i] for i in ids)


def per_gpu_rows(model: str, tasks: int, dry: bool) -> list[dict[str, Any]]:
    """placement_bench's per_gpu rows (1 and 2 workers) on this machine's first device."""
    cmd = [sys.executable, str(ROOT / "bench" / "placement_bench.py"), "--tasks", str(tasks), "--workers", "2",
           "--modes", "per_gpu:1,per_gpu:N", "--json", "--set", f"model.source=random:{model}"]
    env = dict(os.environ)
    if dry:
        cmd += ["--set", "train.steps=2"]
    else:  # both workers on the first GPU
        cmd += ["--config", str(ROOT / "configs" / "kaggle-l4x4.yaml")]
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    if out.returncode != 0:
        return [{"error": (out.stderr or out.stdout)[-300:]}]
    import json

    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def pretrain_rows(model: str, dry: bool) -> list[dict[str, Any]]:
    """`arc-ttt pretrain` on this machine's first device, a few steps each (issue 15: it runs on a GPU):
    the LoRA prior in one process and under deepspeed (1 rank, ZeRO-2), and the full model (fp32 master
    weights, bf16 compute), all with activation checkpointing. Tokens/s and peak GPU memory from pretrain.json."""
    import json
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="gpu-check-pretrain-"))
    env = dict(os.environ)
    if not dry:
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    arc = [sys.executable, "-m", "solve.cli.app"]
    rows: list[dict[str, Any]] = []
    try:
        synth = subprocess.run(arc + ["synth", "--n", "300", "--seed", "0", "--out", str(work / "corpus"), "--no-progress"],
                               capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
        if synth.returncode != 0:
            return [{"name": "synth", "error": (synth.stderr or synth.stdout)[-300:]}]
        base = ["--set", f"model.source=random:{model}", "--set", f"train.steps={2 if dry else 6}", "--set", "train.warmup_steps=1",
                "--set", "pretrain.real_datasets=[]", "--set", "pretrain.heldout_tasks=2", "--set", "pretrain.eval_programs=1",
                "--set", "solve.program_max_new_tokens=16", "--set", "train.gradient_checkpointing=true",
                "--set", "pretrain.checkpoint_every=100", "--set", "sandbox.workers=1"]
        ways = {"LoRA, one process": [], "LoRA, deepspeed 1 rank (ZeRO-2)": ["--set", "placement.mode=deepspeed", "--set", "placement.ranks=1"],
                "full model, fp32 master": ["--set", "pretrain.full_model=true"]}
        for name, extra in ways.items():
            out = work / f"prior-{len(rows)}"
            start = time.perf_counter()
            done = subprocess.run(arc + ["pretrain", "--config", str(ROOT / "configs" / "pretrain-cpu.yaml"), "--corpus", str(work / "corpus"),
                                         "--out", str(out), "--no-progress", *base, *extra],
                                  capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
            if done.returncode != 0 or not (out / "pretrain.json").is_file():
                rows.append({"name": name, "error": (done.stderr or done.stdout)[-300:]})
                continue
            report = json.loads((out / "pretrain.json").read_text())
            rows.append({"name": name, "steps": report["steps"], "tokens_per_s": report["tokens_per_s"],
                         "loss_first": report["loss_first"], "loss_last": report["loss_last"], "seconds": time.perf_counter() - start})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def table(ttt_rows: list[dict], samp: list[dict], per_gpu: list[dict], device: str, seconds: float, pretrain: list[dict]) -> str:
    lines = [f"# GPU check: {device}", "", f"`bash bench/gpu_check.sh`, {seconds:.0f} s. Random-weight models of real shapes.", "",
             "| model | TTT seq | TTT tokens/s | s/step | MFU | peak GiB | sampling generate unmerged tok/s | batched unmerged | batched merged | speedup | search forwards/s (32 rows) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t, s in zip(ttt_rows, samp):
        for r in t["results"]:
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
            peak = f"{max(r.get('peak_mem_gib', 0), s.get('peak_mem_gib', 0)):.1f}" if "peak_mem_gib" in r else "-"
            lines.append(f"| {s['model']} | {r['seq_len']} | {r['tokens_per_s']:,.0f} | {r['s_per_step']:.3f} | {mfu} | {peak} | "
                         f"{s['generate_unmerged']:,.0f} | {s['batched_unmerged']:,.0f} | {s['batched_merged']:,.0f} | "
                         f"{s['speedup']:.2f}x | {s['search']['forwards_per_s']:,.1f} |")
    lines += ["", f"Sampling: {samp[0]['prompts']} prompts of {samp[0]['prompt_len']} tokens x {samp[0]['per_prompt']} samples x "
              f"{samp[0]['new_tokens']} new tokens.", "", "| per_gpu on one device | tasks/hour | peak memory |", "|---|---|---|"]
    for r in per_gpu:
        if "error" in r:
            lines.append(f"| failed: {r['error']!r} | - | - |")
        else:
            mem = ", ".join(f"{k} {v:,.0f}" for k, v in r.items() if k.startswith("peak_")) or "-"
            lines.append(f"| {r['mode']} x{r['workers']} ({r.get('ok', 0)}/{r.get('tasks', 0)} ok) | {r.get('tasks_per_hour', 0):,.0f} | {mem} |")
    lines += ["", "| `arc-ttt pretrain`, a few steps | tokens/s | loss first -> last | wall s |", "|---|---|---|---|"]
    for r in pretrain:
        if "error" in r:
            lines.append(f"| {r['name']}: failed: {r['error']!r} | - | - | - |")
        else:
            lines.append(f"| {r['name']} ({r['steps']} steps) | {r['tokens_per_s']:,.0f} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} | "
                         f"{r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="CPU, the tiny model, tiny sizes: checks the script, measures nothing")
    p.add_argument("--out", default=None, help="write the table here too (default: docs/gpu_check.md on a GPU, nowhere dry)")
    args = p.parse_args()
    from ttt.bench import run_benchmark

    start = time.perf_counter()
    if args.dry:
        device, dtype, shapes = torch.device("cpu"), torch.float32, ["tiny"]
        seq_lens, sizes, tasks = (64,), dict(prompts=2, per_prompt=2, prompt_len=32, new_tokens=8), 2
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_check: no GPU here (use --dry for the CPU check)")
        device, dtype, shapes = torch.device("cuda"), torch.bfloat16, SHAPES
        seq_lens, sizes, tasks = (1024, 4096), dict(prompts=8, per_prompt=4, prompt_len=860, new_tokens=128), 4
    ttt_rows, samp = [], []
    for shape in shapes:
        print(f"gpu_check: {shape} ...", file=sys.stderr, flush=True)
        ttt_rows.append(run_benchmark(shape, seq_lens, steps=1 if args.dry else 3, warmup=1, device=device.type,
                                      dtype="float32" if args.dry else "bfloat16"))
        samp.append(sampling_row(shape, device, dtype, **sizes))
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next shape (7B) needs the memory this one held
    per_gpu = per_gpu_rows("tiny" if args.dry else "qwen2.5-0.5b", tasks, args.dry)
    print("gpu_check: pretrain ...", file=sys.stderr, flush=True)
    pretrain = pretrain_rows("tiny" if args.dry else "qwen2.5-0.5b", args.dry)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (dry run: checks the script, not a measurement)"
    text = table(ttt_rows, samp, per_gpu, name, time.perf_counter() - start, pretrain)
    print(text)
    out = args.out or (None if args.dry else str(ROOT / "docs" / "gpu_check.md"))
    if out:
        Path(out).write_text(text)


if __name__ == "__main__":
    main()
