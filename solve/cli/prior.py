"""CLI commands `synth` (synthetic tasks with programs) and `pretrain` (the program prior)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from solve.cli.common import ConfigOpt, SetOpt, console, fail, json_stdout, load_config_or_fail, parse_shard


def synth(
    out: Annotated[Path, typer.Option("--out", help="directory for challenges.json, solutions.json, programs.jsonl")],
    n: Annotated[Optional[int], typer.Option("--n", help="slots to generate (each yields at most one task); "
                                             "leave out with --stats to read an existing corpus in --out")] = None,
    seed: Annotated[int, typer.Option(help="corpus seed: the same seed and n give the same files")] = 0,
    shard: Annotated[Optional[str], typer.Option(help="i/n: only this shard's tasks (shards partition the corpus)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes sharing the work (the same files as one)")] = 1,
    stats: Annotated[bool, typer.Option("--stats", help="print the corpus's stats (degenerate shares, shapes kept, "
                                        "depths, primitives) after generating, or of --out alone without --n")] = False,
    sample: Annotated[int, typer.Option(help="--stats: depth>=2 tasks run through the depth-1 DSL search (0: none)")] = 100,
    search_seconds: Annotated[float, typer.Option(help="--stats: search time per sampled task")] = 2.0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the report (and stats) as JSON")] = False,
) -> None:
    """Generate synthetic tasks with their DSL programs (Kaggle format), rejects counted, contamination checked;
    --stats: how ARC-like the corpus is."""
    if n is None and not stats:
        raise fail("give --n (slots to generate), or --stats to read the corpus in --out")
    if n is not None and n < 0:
        raise fail(f"--n must be >= 0, got {n}")
    if n is None and not (out / "challenges.json").exists():
        raise fail(f"no corpus in {out}: challenges.json is missing")
    with json_stdout(as_json) as emit:  # --json: the progress bar and any log line go to stderr
        report = None
        if n is not None:
            from solve.synth.corpus import generate_corpus

            report = generate_corpus(n, seed, out, parse_shard(shard) if shard else (0, 1), progress=progress, workers=workers)
            report["command"] = " ".join(["arc-ttt", *sys.argv[1:]])  # how to make these files again (the model card cites it)
            (Path(out) / "synth_report.json").write_text(json.dumps(report, indent=1))
        corpus_stats = _corpus_stats(out, sample, search_seconds) if stats else None
        if as_json:
            emit(report if corpus_stats is None else corpus_stats if report is None else {**report, "stats": corpus_stats})
            return
    if report is not None:
        _print_report(report, out)
    if corpus_stats is not None:
        from solve.synth.stats import format_stats

        console.print(format_stats(corpus_stats), highlight=False)
    if report is not None and not report["contamination"]["clean"]:
        raise typer.Exit(1)


def _corpus_stats(out: Path, sample: int, seconds: float) -> dict:
    """solve.synth.stats with the depth-1 DSL search as the one-call test (the search sits above synth)."""
    from solve.dsl_search.search import search_task
    from solve.synth.stats import corpus_stats

    def one_call(task) -> bool:  # one call that reproduces every train and test output
        found = search_task(task, depth=1, seconds=seconds, max_solutions=4, near_misses=0).solutions
        want = list(task.test_outputs or ())
        return any(all(a.shape == b.shape and (a == b).all() for a, b in zip(f.test_outputs, want)) for f in found)

    return corpus_stats(out, one_call if sample else None, sample, f"depth-1 DSL search, {seconds:g} s each")


def _print_report(report: dict, out: Path) -> None:
    c = report["contamination"]
    console.print(f"accepted {report['accepted']} of {report['attempted']} programs tried over {report['slots']} slots "
                  f"({report['tasks_per_s']} tasks/s); rejects: " + ", ".join(f"{k} {v}" for k, v in report["rejects"].items() if v))
    console.print(f"contamination: {c['written_grids_checked']} grids checked against {c['evaluation_grids']} evaluation grids, "
                  f"{c['written_contaminated']} found, {c['rejected_contaminated']} candidates rejected -> "
                  + ("[green]clean[/]" if c["clean"] else "[red]CONTAMINATED[/]"))
    console.print(f"wrote {out}/challenges.json, solutions.json, programs.jsonl")


def pretrain(
    corpus: Annotated[list[Path], typer.Option("--corpus", help="an `arc-ttt synth` output directory (repeatable)")],
    out: Annotated[Path, typer.Option("--out", help="output directory: the adapter (or model), MODEL_CARD.md, checkpoints")],
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    stop_after: Annotated[Optional[int], typer.Option("--stop-after", min=1, help="end after this many more steps, leaving a "
                                                      "checkpoint that the same command resumes (time slices)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Train the program prior on synthetic tasks (+ clean real training tasks); resumes a checkpoint in --out.
    With placement.mode=deepspeed: data-parallel over placement.ranks ranks (0 = one per GPU) with ZeRO-2."""
    from solve.pretrain.data import CorpusError
    from solve.pretrain.recipe import PretrainError
    from solve.pretrain.recipe import pretrain as run_pretrain
    from ttt.lora import AdapterError
    from ttt.models import ModelResolutionError

    cfg = load_config_or_fail(config, overrides)
    try:
        if cfg.placement.mode == "deepspeed":
            report = _launch_ranks(cfg, corpus, out, stop_after)
        else:
            report = run_pretrain(cfg, corpus, out, console, progress, stop_after=stop_after)
    except (CorpusError, PretrainError, AdapterError, ModelResolutionError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: the last checkpoint in {out} resumes with the same command")
        raise typer.Exit(130) from None
    if report["done"]:
        use = f"model.source: {out}" if cfg.pretrain.full_model else f"model.adapter: {out}"
        console.print(f"prior written to {out} (use {use}); card: {out}/MODEL_CARD.md")
    else:
        console.print(f"stopped at step {report['steps']} of {cfg.train.steps}; the same command resumes from {out}/checkpoint")


def _launch_ranks(cfg, corpus: list[Path], out: Path, stop_after: int | None) -> dict:
    """Run `placement.ranks` pretraining ranks (solve.cli.pretrain_rank) with the deepspeed launcher and
    wait for them; rank 0's report (out/pretrain.json). Their shared-memory buffers go when they end."""
    import os

    import torch

    from solve.pipeline.runconfig import dump_config
    from solve.placement.ds_launch import free_port, rank_count, wait_launch
    from solve.pretrain.recipe import PretrainError

    n = rank_count(cfg)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "pretrain-launch.yaml"
    config.write_text(dump_config(cfg))
    (out / "pretrain.json").unlink(missing_ok=True)  # the report this launch writes, not an older one
    port = free_port()
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(n), "--master_port", str(port), "--no_local_rank",
           "--module", "solve.cli.pretrain_rank", "--config", str(config), "--out", str(out)]
    for c in corpus:
        cmd += ["--corpus", str(c)]
    if stop_after is not None:
        cmd += ["--stop-after", str(stop_after)]
    cmd += ["--command", " ".join(["arc-ttt", *sys.argv[1:]])]
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed looks for an accelerator and fails
    console.print(f"launching {n} deepspeed rank(s) for pretraining (ZeRO-{cfg.placement.zero_stage}, master port {port})")
    rc = wait_launch(cmd, env, None, port)
    report_path = out / "pretrain.json"
    if rc != 0 or not report_path.is_file():
        raise PretrainError(f"the pretraining ranks exited with code {rc} (their output is above); the same command resumes "
                            f"from the last checkpoint in {out}")
    return json.loads(report_path.read_text())
