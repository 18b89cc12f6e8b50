"""`arc-ttt bench`: one table of this machine's throughput for every part of the pipeline.

Rows: augmentation samples/s (augment.bench), sandbox program-runs/s with 1 worker and all cores
(solve.sandbox.bench), LoRA training tokens/s of the embedded model (ttt.bench), sampling tokens/s
of the demo's program prompts through transformers' `generate` (adapter unmerged: the old path) and
the batched decoder (unmerged, merged), back to back in one process (`sampling.speedup`), greedy vs
threshold search for one grid, scoring with and without a shared prompt cache, and the seconds per
stage of one full small task (the real pipeline with the demo's settings).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

# The settings of configs/cpu-demo.yaml (a test keeps them equal), kept here so an installed arc-ttt
# (no configs/ dir) has them; --quick trims the budgets that dominate a task's time.
DEMO_OVERRIDES = [
    "run.seed=0", "run.task_timeout_s=240", "model.source=smollm2-135m", "model.adapter=ttt/priors/smollm2-135m",
    "augment.set=geometric+color", "augment.n_samples=12", "train.steps=8", "train.lr=1.0e-3", "train.max_seq_len=1024",
    "train.batch_tokens=1024", "lora.r=16", "lora.alpha=32", "solve.mode=hybrid", "solve.program_views=1",
    "solve.programs_per_view=4", "solve.program_max_new_tokens=160", "solve.grid_views=2", "solve.grid_samples_per_view=1",
    "solve.score_views=2", "solve.batch_size=4", "solve.dsl_search_depth=2", "solve.dsl_search_s=10", "sandbox.timeout_s=1.0",
]
QUICK_OVERRIDES = ["train.steps=4", "solve.programs_per_view=2", "solve.program_max_new_tokens=64",
                   "solve.grid_views=1", "solve.score_views=1"]
GEN_PROMPTS = 8
SAMPLING_TASKS = 2  # tasks whose demo program prompts the sampling row decodes


def useful_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of a program answer up to its closing code fence (what either decoder must write; a
    decoder that stops there and one that writes the end-of-turn after it are counted alike)."""
    start = text.find("```")
    end = text.find("```", start + 3) if start >= 0 else -1
    return len(tokenizer.encode(text[: end + 3] if end >= 0 else text, add_special_tokens=False))


def bench_sampling(engine: Any, cfg: Any, tasks: list[Any], n_tasks: int = SAMPLING_TASKS, repeats: int = 2) -> dict[str, Any]:
    """The demo's program sampling (its views, samples per view, token cap, temperature, seed) on the
    same prompts, back to back: transformers' `generate` with the adapter unmerged (the old path), the
    batched decoder merged without the program draft, and with it unmerged and merged (the default:
    `solve.sampler: batched`, `merge_adapter`, `program_draft`). Tokens are counted alike for all
    (`useful_tokens`); speedup = batched merged tokens/s over generate's."""
    from solve.pipeline.stages import task_views
    from ttt.decoding.decode import ProgramStop
    from ttt.decoding.sample import Decoding, generate
    from ttt.prompts import fit_prompt

    c, tok = cfg.solve, engine.tokenizer
    prompts = []
    for task in tasks[:n_tasks]:
        for v in task_views(task, cfg, c.program_views):
            vt = v.apply_task(task)
            prompts.append(fit_prompt(tok, "program", vt.train, None, vt.test_inputs, c.program_max_new_tokens, cfg.train.max_seq_len).ids)
    generate(engine.model, tok, prompts[:1], 1, 2, 0.8, 0.95, 1, 0)  # warm-up: first-call costs are not throughput
    paths = {
        "generate_unmerged": None,
        "batched_merged_no_draft": Decoding("batched", True, c.decode_rows, ProgramStop()),
        "batched_unmerged": Decoding("batched", False, c.decode_rows, ProgramStop(), c.program_draft),
        "batched_merged": Decoding("batched", True, c.decode_rows, ProgramStop(), c.program_draft),
    }
    out: dict[str, Any] = {"prompts": len(prompts), "per_prompt": c.programs_per_view, "max_new_tokens": c.program_max_new_tokens,
                           "repeats": repeats,
                           "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts)}
    for name, decoding in paths.items():
        seconds = float("inf")
        for _ in range(repeats):  # the fastest of `repeats` identical runs (same seed, same tokens): less noise
            start = time.perf_counter()
            texts = generate(engine.model, tok, prompts, c.programs_per_view, c.program_max_new_tokens, c.temperature, c.top_p,
                             c.batch_size, cfg.run.seed, decoding=decoding)
            seconds = min(seconds, time.perf_counter() - start)
        tokens = sum(useful_tokens(tok, t) for row in texts for t in row)
        out[name] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
    out["speedup"] = out["batched_merged"]["tokens_per_s"] / out["generate_unmerged"]["tokens_per_s"]
    out["merge_gain"] = out["batched_merged"]["tokens_per_s"] / out["batched_unmerged"]["tokens_per_s"]
    out["draft_gain"] = out["batched_merged"]["tokens_per_s"] / out["batched_merged_no_draft"]["tokens_per_s"]
    return out


def bench_grid_search(engine: Any, cfg: Any, task: Any, min_prob: float = 0.05) -> dict[str, Any]:
    """Greedy decoding against the probability-threshold search (`ttt.decoding.grid_search`) on one grid prompt."""
    from ttt.decoding.decode import GridStop
    from ttt.decoding.grid_search import GridGrammar, search_grids
    from ttt.decoding.sample import Decoding, generate, grid_token_budget
    from ttt.lora import merged_adapter
    from ttt.prompts import end_ids, fit_prompt, pad_id

    tok = engine.tokenizer
    budget = grid_token_budget(task, tok)
    prompt = fit_prompt(tok, "grid", task.train, task.test_inputs[0], (), budget, cfg.train.max_seq_len).ids
    start = time.perf_counter()
    generate(engine.model, tok, [prompt], 1, budget, 0.0, 1.0, 1, 0, decoding=Decoding("batched", True, 1, GridStop()))
    greedy_s = time.perf_counter() - start
    grammar = GridGrammar(tok, end_ids(tok))
    start = time.perf_counter()
    with merged_adapter(engine.model):
        found = search_grids(engine.model, tok, grammar, prompt, pad_id(tok), min_prob, budget, max_candidates=64)
    dfs_s = time.perf_counter() - start
    return {"task_id": task.id, "min_prob": min_prob, "greedy_s": greedy_s, "dfs_s": dfs_s, "candidates": len(found.grids),
            "forwards": found.forwards, "complete": found.complete, "candidates_per_s": len(found.grids) / dfs_s}


def bench_scoring(engine: Any, task: Any, n_candidates: int = 8, n_views: int = 4) -> dict[str, Any]:
    """Product-of-experts scoring of `n_candidates` grids under `n_views` views: every (candidate, view)
    as a whole row, vs each view's prompt run once with every candidate scored against its KV cache."""
    import numpy as np

    from solve.pipeline.runconfig import RunConfig
    from solve.pipeline.stages import task_views
    from ttt.nll import target_nll
    from ttt.prompts import grid_scoring_item

    rng = np.random.default_rng(0)
    truth = task.test_outputs[0] if task.test_outputs else task.train[0].output
    candidates = [truth] + [np.where(rng.random(truth.shape) < 0.2, rng.integers(0, 10, truth.shape), truth).astype(np.uint8)
                            for _ in range(n_candidates - 1)]
    views = task_views(task, RunConfig(), n_views)  # the default augmentation set and seed
    items = []
    for v in views:
        vt = v.apply_task(task)
        items += [grid_scoring_item(engine.tokenizer, vt.train, vt.test_inputs[0], v.apply_grid(c)) for c in candidates]
    target_nll(engine.model, engine.tokenizer, items[:1])  # warm-up

    def timed(share: bool) -> tuple[float, list[float]]:
        start = time.perf_counter()
        values = target_nll(engine.model, engine.tokenizer, items, reduction="sum", share_prompts=share)
        return time.perf_counter() - start, values

    whole_s, whole = timed(False)
    shared_s, shared = timed(True)
    return {
        "task_id": task.id, "candidates": len(candidates), "views": len(views), "items": len(items),
        "prompt_tokens_mean": sum(len(p) for p, _ in items) / len(items),
        "answer_tokens_mean": sum(len(a) for _, a in items) / len(items),
        "whole_rows_s": whole_s, "shared_prompt_s": shared_s, "speedup": whole_s / shared_s,
        "max_abs_diff": max(abs(a - b) for a, b in zip(whole, shared)),
    }


def bench_task(engine: Any, cfg: Any, task: Any) -> dict[str, Any]:
    """The record of one full pipeline run on `task`: per-stage seconds and counts."""
    from solve.pipeline.stages import solve_task
    from solve.sandbox.pool import Sandbox

    with Sandbox(cfg.sandbox) as sandbox:
        rec = solve_task(task, cfg, engine, sandbox)
    return {
        "task_id": task.id, "status": rec["status"], "seconds": rec["seconds"], "score": rec["score"],
        "stages": {k: v["seconds"] for k, v in rec["stages"].items()},
        "ttt_steps": rec["stages"].get("ttt", {}).get("steps"),
        "error": rec["error"]["message"] if rec.get("error") else None,
    }


def run_all(quick: bool = False, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    import torch

    from augment.bench import run_benchmark as augment_bench
    from augment.tasks import load_dataset, small_tasks
    from solve.dsl_search.bench import run_benchmark as dsl_bench
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine
    from solve.sandbox.bench import run_benchmark as sandbox_bench
    from ttt.bench import run_benchmark as ttt_bench

    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "platform": platform.platform(), "loadavg_start": os.getloadavg()[0]},
        "quick": quick,
    }
    log("augment ...")
    out["augment"] = augment_bench("arc-agi-1/evaluation", "geometric+color", 32, 50 if quick else None)
    log("dsl search ...")
    out["dsl_search"] = dsl_bench("arc-agi-1/training", 4 if quick else 8, 2, 1.0 if quick else 2.0)
    log("sandbox ...")
    out["sandbox"] = sandbox_bench(10 if quick else 40, "arc-agi-1/training")
    log("ttt ...")
    out["ttt"] = ttt_bench("smollm2-135m", (512,) if quick else (512, 1024), steps=1 if quick else 3, warmup=1)
    cfg = load_config(None, DEMO_OVERRIDES + (QUICK_OVERRIDES if quick else []))
    engine = Engine.load(cfg)
    tasks = small_tasks(load_dataset("arc-agi-1/evaluation").tasks, GEN_PROMPTS)
    log("sampling ...")
    out["sampling"] = bench_sampling(engine, cfg, tasks, 1 if quick else SAMPLING_TASKS, 1 if quick else 2)
    log("grid search ...")
    out["grid_search"] = bench_grid_search(engine, cfg, tasks[0])
    log("scoring ...")
    out["scoring"] = bench_scoring(engine, tasks[0])
    log("one task ...")
    out["task"] = bench_task(engine, cfg, tasks[0]) | {"overrides": DEMO_OVERRIDES + (QUICK_OVERRIDES if quick else [])}
    # Other processes on the same cores distort every row (OpenMP threads thrash): say how busy it was.
    out["machine"]["loadavg_end"] = os.getloadavg()[0]
    return out


def format_table(r: dict[str, Any]) -> str:
    m = r["machine"]
    rows: list[tuple[str, str, str, str]] = []
    a = r["augment"]
    rows.append(("augment", f"{a['sets']['geometric+color']['set']}, n={a['n_samples']}, {a['tasks']} tasks",
                 f"{a['samples_per_s']:,.0f}", "samples/s"))
    ds = r.get("dsl_search")
    if ds:
        what = f"{ds['tasks']} {ds['dataset']} tasks, depth {ds['depth']}, {ds['seconds_per_task']:g} s each"
        rows.append(("dsl search", f"primitive calls, {what}", f"{ds['calls_per_s']:,.0f}", "calls/s"))
        rows.append(("dsl search", f"distinct behaviours (on train input 0), {what}", f"{ds['behaviours_per_s']:,.0f}", "behaviours/s"))
        rows.append(("dsl search", f"depth reached in the budget (min over tasks), solved {ds['solved']}/{ds['tasks']}",
                     f"{ds['depth_reached_min']}", "calls"))
    s = r["sandbox"]
    for n, w in s["by_workers"].items():
        label = f"{n} worker{'s' if int(n) > 1 else ''}" + (" (all cores)" if int(n) == s["cores"] and int(n) > 1 else "")
        rows.append(("sandbox", f"{label}, {s['programs']} programs", f"{w['program_runs_per_s']:,.0f}", "program-runs/s"))
    rows.append(("sandbox", "overhead, trivial program, 1 worker", f"{s['overhead_ms_per_program']:.1f}", "ms/program"))
    t = r["ttt"]
    for row in t["results"]:
        rows.append(("ttt", f"{t['model']} LoRA train step, seq {row['seq_len']}, batch {row['batch_size']}",
                     f"{row['tokens_per_s']:,.0f}", f"tokens/s ({row['s_per_step']:.2f} s/step)"))
    g = r["sampling"]
    what = (f"{g['prompts']} prompts (~{g['prompt_tokens_mean']:.0f} tok) x {g['per_prompt']} programs, <= {g['max_new_tokens']} new"
            f"{', best of ' + str(g['repeats']) if g.get('repeats', 1) > 1 else ''}")
    for name, label in (("generate_unmerged", "transformers generate, adapter unmerged"),
                        ("batched_merged_no_draft", "batched decoder, merged, no program draft"),
                        ("batched_unmerged", "batched decoder, unmerged"), ("batched_merged", "batched decoder, adapter merged")):
        rows.append(("sampling", f"{label}, {what}", f"{g[name]['tokens_per_s']:,.1f}", f"tokens/s ({g[name]['seconds']:.1f} s)"))
    rows.append(("sampling", "speedup: batched merged over generate unmerged", f"{g['speedup']:.2f}", "x"))
    d = r.get("grid_search")
    if d:
        rows.append(("grid", f"{d['task_id']}: greedy grid", f"{d['greedy_s']:.2f}", "s"))
        rows.append(("grid", f"{d['task_id']}: dfs, p >= {d['min_prob']}: {d['candidates']} grids, {d['forwards']} forwards",
                     f"{d['dfs_s']:.2f}", "s"))
    sc = r.get("scoring")
    if sc:
        what = f"{sc['candidates']} candidates x {sc['views']} views (~{sc['prompt_tokens_mean']:.0f}+{sc['answer_tokens_mean']:.0f} tok)"
        rows.append(("score", f"whole rows, {what}", f"{sc['whole_rows_s']:.2f}", "s"))
        rows.append(("score", f"shared prompt KV cache, {what}", f"{sc['shared_prompt_s']:.2f}", "s"))
        rows.append(("score", f"shared prompt speedup (max |diff| {sc['max_abs_diff']:.1e} nats)", f"{sc['speedup']:.2f}", "x"))
    k = r["task"]
    for stage, sec in k["stages"].items():
        extra = f", {k['ttt_steps']} steps" if stage == "ttt" else ""
        rows.append(("task", f"{k['task_id']}: {stage}{extra}", f"{sec:.2f}", "s"))
    why = f": {k['error'][:60]}" if k.get("error") else ""
    rows.append(("task", f"{k['task_id']}: total ({k['status']}{why})", f"{k['seconds']:.2f}", "s"))
    head = ("part", "setting", "value", "unit")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(4)]
    line = lambda x: "  ".join(c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(x, widths)))  # noqa: E731
    title = (f"arc-ttt bench{' --quick' if r['quick'] else ''}: {m['cpus']} CPUs, torch {m['torch']} "
             f"({m['torch_threads']} threads), {m['cuda'] or 'no GPU'}; load average {m['loadavg_start']:.1f} at start, "
             f"{m['loadavg_end']:.1f} at end")
    return "\n".join([title, line(head), "  ".join("-" * w for w in widths), *map(line, rows)])
