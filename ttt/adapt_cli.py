"""`arc-ttt adapt`: test-time-train on one task and report losses and the NLL of held-out answers.

nll_before is measured on a freshly reset adapter (LoRA B = 0, so exactly the base model) and
nll_after on the trained one; both are mean NLL per answer token (grid text + end-of-turn).
"""

from __future__ import annotations

import io
import time
from typing import Any, Sequence

import numpy as np

from augment.loo import build_samples
from augment.sets import get_set
from augment.tasks import Pair, Task
from ttt.config import LoraConfig, ModelConfig, TrainConfig
from ttt.lora import reset_adapter, trainable_parameter_count, wrap_lora
from ttt.models import load_model
from ttt.nll import target_nll
from ttt.prompts import grid_scoring_item
from ttt.train import adapt

SPARK = "▁▂▃▄▅▆▇█"


def adapt_and_score(
    model: Any,
    tokenizer: Any,
    task: Task,
    train_cfg: TrainConfig,
    augment_set: str,
    n_samples: int,
    seed: int,
    runner: Any = None,
) -> dict[str, Any]:
    """Adapt on `task.train` (leave-one-out samples) and score task.test_outputs before and after.
    `runner`: the data-parallel ranks' `ttt.train.StepRunner` (None in one process)."""
    samples, build = build_samples(task, get_set(augment_set), n_samples, np.random.default_rng(seed))
    items = []
    if task.test_outputs is not None:
        items = [grid_scoring_item(tokenizer, task.train, q, t) for q, t in zip(task.test_inputs, task.test_outputs)]
    reset_adapter(model, train_cfg.seed)
    before = target_nll(model, tokenizer, items, ranks=runner)
    result = adapt(model, tokenizer, samples, train_cfg, runner=runner)
    after = target_nll(model, tokenizer, items, ranks=runner)
    return {**result.to_dict(), "build": build.to_dict(), "nll_before": before, "nll_after": after}


def adapt_command(
    task: Task,
    model_cfg: ModelConfig,
    lora_cfg: LoraConfig,
    train_cfg: TrainConfig,
    augment_set: str = "geometric",
    n_samples: int = 32,
    seed: int = 0,
    leave_one_out: bool = False,
) -> dict[str, Any]:
    """Run TTT on one task; JSON-able dict. With leave_one_out, each train pair is also held out in
    turn (adapt on the other pairs, score the held-out one): `holdout` lists those runs."""
    start = time.monotonic()
    model, tokenizer = load_model(model_cfg)
    model = wrap_lora(model, lora_cfg)
    report: dict[str, Any] = {
        "task": task.id,
        "model": model_cfg.source,
        "trainable_params": trainable_parameter_count(model),
        "load_s": time.monotonic() - start,
        **adapt_and_score(model, tokenizer, task, train_cfg, augment_set, n_samples, seed),
    }
    if leave_one_out:
        report["holdout"] = [
            {"pair": i, **adapt_and_score(model, tokenizer, hold_out(task, i), train_cfg, augment_set, n_samples, seed)}
            for i in range(len(task.train))
        ]
    report["total_s"] = time.monotonic() - start
    return report


def hold_out(task: Task, i: int) -> Task:
    rest: Sequence[Pair] = task.train[:i] + task.train[i + 1 :]
    held = task.train[i]
    return Task(f"{task.id}-without-{i}", tuple(rest), (held.input,), (held.output,))


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))] for v in values)


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values) if values else "-"


def render_adapt_report(report: dict[str, Any], width: int = 120) -> str:
    """The report as a rich table (plain text, no color codes) for a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"TTT on task {report['task']} ({report['model']})", show_header=True)
    for col in ("run", "steps", "stop", "s", "tok/s", "loss first→last", "loss curve", "NLL before", "NLL after"):
        table.add_column(col, no_wrap=col in ("run", "loss curve"))
    runs = [("test", report)] + [(f"pair {h['pair']} out", h) for h in report.get("holdout", [])]
    for name, r in runs:
        losses = r["losses"]
        table.add_row(
            name,
            str(r["steps"]),
            r["stopped_by"],
            f"{r['seconds']:.1f}",
            f"{r['tokens_per_s']:.0f}",
            f"{losses[0]:.3f}→{losses[-1]:.3f}" if losses else "-",
            sparkline(losses),
            _fmt(r["nll_before"]),
            _fmt(r["nll_after"]),
        )
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    s = report["samples"]
    console.print(
        f"trainable params {report['trainable_params']:,}; samples kept {s['kept']}/{s['given']} "
        f"(shortened {s['shortened']}, dropped {s['dropped']}); load {report['load_s']:.1f}s, total {report['total_s']:.1f}s"
    )
    return console.file.getvalue()
