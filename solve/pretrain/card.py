"""The model card written beside a prior: how it was made (data, seeds, steps, metrics, the exact command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solve.pipeline.runconfig import RunConfig, dump_config


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _repairs(data: dict[str, Any], cfg: RunConfig) -> str:
    r = data.get("repairs") or {}
    if not r.get("tasks"):
        return f"- repair samples: none (pretrain.repair_share={cfg.pretrain.repair_share})"
    kinds = ", ".join(f"{n} {k}" for k, n in r["kept_by_kind"].items())
    return (f"- repair samples (a program with one change, in the refinement prompt with its sandbox outcomes -> the program): "
            f"{data.get('repair_examples', 0)} encoded of {r['kept']} made ({kinds}) from {r['tasks_with_repairs']} of {r['tasks']} tasks, "
            f"{r['repairs_per_task']} asked per task; {r['run']} mutants run, {r['still_verified']} discarded as still right, "
            f"{r['no_grid']} as returning no grid, {r['lookup']} as lookup tables; {r['original_not_verified']} tasks whose program "
            f"did not verify skipped; pretrain.repair_share={cfg.pretrain.repair_share} of program micro-batches")


def write_card(out: Path, cfg: RunConfig, report: dict[str, Any]) -> Path:
    data = report["data"]
    lines = [
        f"# arc-ttt program prior: {out.name}",
        "",
        f"A {'full fine-tune' if cfg.pretrain.full_model else 'LoRA adapter'} of `{cfg.model.source}` made by `arc-ttt pretrain`; "
        + ("use it in a run with `model.source: <this directory>`." if cfg.pretrain.full_model else
           "use it in a run with `model.adapter: <this directory>` (every task's TTT starts from it)."),
        "",
        "## Command",
        "",
        f"    {report['command']}",
        "",
        (f"Trained data-parallel on {report['ranks']} DeepSpeed ranks (ZeRO-{report['zero_stage']}); each step's micro-batches "
         "are split across them." if report.get("zero_stage") is not None else "Trained in one process."),
        "",
        "## Data",
        "",
    ]
    for c in data["corpora"]:
        made = f", made by `{c['command']}` (contamination check clean: {c['contamination_clean']})" if c.get("command") else ""
        lines.append(f"- synthetic corpus `{c['path']}`: {c['tasks']} tasks with programs{made}; "
                     f"{c.get('contaminated_dropped', 0)} dropped at load for sharing a grid with an evaluation set")
    lines.append(f"- tasks with a grid side over pretrain.max_grid_side={cfg.pretrain.max_grid_side}: {data['larger_than_max_side']} synthetic left out")
    lines.append(f"- synthetic tasks trained on: {data['synthetic_train_tasks']}; held out for evaluation: {len(data['heldout_tasks'])}")
    for r in data["real_datasets"]:
        lines.append(f"- real `{r['dataset']}`: {r['total'] - r['excluded']} of {r['total']} tasks used as grid samples; "
                     f"{r['excluded']} excluded because they share a grid with ARC-AGI-1 or ARC-AGI-2 evaluation, "
                     f"{r['larger_than_max_side']} left out as larger than max_grid_side")
    lines += [
        f"- examples: {data['program_examples']} program (code from examples), {data['grid_examples']} grid "
        f"(output from examples); {data['dropped_too_long']} too long for train.max_seq_len={cfg.train.max_seq_len}",
        _repairs(data, cfg),
        "",
        "## Training",
        "",
        f"- steps {report['steps']}, lr {cfg.train.lr}, {cfg.train.schedule} schedule, warmup {cfg.train.warmup_steps}, "
        f"batch_tokens {cfg.train.batch_tokens} x grad_accum {cfg.train.grad_accum}, seed {cfg.run.seed}/{cfg.train.seed}",
        f"- LoRA r {cfg.lora.r}, alpha {cfg.lora.alpha}, targets {', '.join(cfg.lora.target_modules)}",
        (f"- started from the adapter `{cfg.model.adapter}` as it was when this run began (its weights; a fresh optimizer and "
         "schedule)" if cfg.model.adapter and not cfg.pretrain.full_model else "- started from a fresh LoRA adapter"),
        f"- program header (`solve.program_draft`) labelled in {cfg.pretrain.header_label_share:.1%} of program samples; "
        "the rest learn the body only",
        f"- tokens {report['tokens']:,}, {report['tokens_per_s']} tokens/s, {report['train_seconds']} s of training",
        f"- loss {_num(report['loss_first'])} (first step) -> {_num(report['loss_last'])} (mean of the last 20)",
        "",
        "## Evaluation on held-out synthetic tasks (real sandbox)",
        "",
        "| step | programs | parse | run | verify | tasks verified | grid NLL |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in report["evals"]:
        lines.append(f"| {e['step']} | {e.get('programs')} | {e.get('parse_rate')} | {e.get('run_rate')} | {e.get('verify_rate')} | "
                     f"{e.get('tasks_verified')}/{e.get('tasks')} | {e.get('grid_nll')} |")
    lines += ["", "## Resolved config", "", "```yaml", dump_config(cfg).rstrip(), "```", ""]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    (out / "pretrain_report.json").write_text(json.dumps(report, indent=1))
    return path
