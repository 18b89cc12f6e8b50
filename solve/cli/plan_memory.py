"""`arc-ttt plan`: predicted peak GPU and host memory per stage before spending a Kaggle submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from solve.cli.common import SetOpt, fail, json_stdout, load_config_or_fail


def plan(
    config: Annotated[Path, typer.Option("--config", help="the run's YAML config")],
    model: Annotated[Optional[str], typer.Option(
        "--model", help="the model's shape when model.source is not on this machine: random:qwen2.5-7b (presets qwen2.5-0.5b, "
        "qwen2.5-1.5b, qwen2.5-7b, tiny), PATH/config.json or a model dir")] = None,
    device: Annotated[str, typer.Option("--device", help="target: l4 (Kaggle 4x L4), t4, a100-80, h100, cpu")] = "l4",
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as one JSON object")] = False,
) -> None:
    """Each stage's predicted peak GPU memory (load, train, sample, score) and the host's, for the configured
    model on the target device, and what to change when it does not fit. Exit status 1 when it does not."""
    from solve.experiments.memory_plan import DEVICES, PlanError, Shape, format_plan, model_config
    from solve.experiments.memory_plan import plan as make_plan

    cfg = load_config_or_fail(config, overrides or [])
    if device not in DEVICES:
        raise fail(f"--device {device!r}: one of {', '.join(DEVICES)}")
    with json_stdout(as_json) as emit:
        try:
            shape = Shape.of(model_config(model or cfg.model.source, cfg.model.cache_dir))
        except PlanError as e:
            raise fail(str(e)) from None
        result = make_plan(cfg, shape, DEVICES[device])
        result["model"]["source"] = model or cfg.model.source
        if as_json:
            emit(result)
    if not as_json:
        print(format_plan(result))
    if not result["fits"]:
        raise typer.Exit(1)
