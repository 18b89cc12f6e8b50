"""The pretraining recipe: one loop, stateless data order, resumable checkpoints, periodic evaluation.

A step draws its micro-batches from a numpy Generator seeded with (seed, step), so the data order
depends on nothing but the step number: a resumed run sees exactly what an uninterrupted one would.
Each micro-batch is all program examples or all grid examples (`pretrain.program_share` of them
programs), packed under `train.batch_tokens`. The optimizer step is ttt.train's (`train_step`,
`LocalRunner`: AdamW, warmup + decay, clipping), the same as per-task TTT.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from solve.pipeline.runconfig import RunConfig, dump_config
from solve.pretrain.card import write_card
from solve.pretrain.data import choose_tasks, corpus_fingerprint, encode_examples, load_corpus, real_examples, synthetic_examples
from solve.pretrain.evaluate import summarize, task_counts
from solve.pretrain.repair import repair_examples, repair_pick
from ttt.nll import collate, model_device
from ttt.prompts import Encoded, pad_id
from ttt.train import LocalRunner, set_checkpointing, train_step

CHECKPOINT = "checkpoint"
STATE = "state.pt"
DS_DIR, DS_TAG = "deepspeed", "state"  # inside the checkpoint: DeepSpeed's per-rank optimizer partitions
LOG = "pretrain.jsonl"


class PretrainError(ValueError):
    """A pretraining run that cannot start or resume as asked."""


class Ranks:
    """This process's place among the pretraining ranks: one process (`zero_stage` None) or a rank of
    a DeepSpeed data-parallel group (torch.distributed already initialized, see solve.cli.pretrain_rank)."""

    def __init__(self, zero_stage: int | None):
        self.zero_stage = zero_stage
        self.dist: Any = None
        self.rank, self.world = 0, 1
        if zero_stage is not None:
            import torch.distributed as dist

            self.dist, self.rank, self.world = dist, dist.get_rank(), dist.get_world_size()

    @property
    def lead(self) -> bool:
        """Rank 0: the only writer of the output directory and the console."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.dist is not None:
            self.dist.barrier()


@dataclass
class Pools:
    programs: list[Encoded]
    grids: list[Encoded]
    repairs: list[Encoded] = field(default_factory=list)  # solve.pretrain.repair: `pretrain.repair_share` of program micro-batches


def draw_step(pools: Pools, step: int, seed: int, cfg: RunConfig, world: int = 1) -> list[list[Encoded]]:
    """The micro-batches of optimizer step `step` for `world` ranks together (`train.grad_accum` per
    rank; rank r takes [r::world]): a pure function of (seed, step, world)."""
    rng = np.random.default_rng([seed, step])
    out = []
    for _ in range(cfg.train.grad_accum * world):
        use_programs = pools.programs and (not pools.grids or rng.random() < cfg.pretrain.program_share)
        pool = pools.programs if use_programs else pools.grids
        if use_programs and pools.repairs and cfg.pretrain.repair_share > 0 and rng.random() < cfg.pretrain.repair_share:
            pool = pools.repairs  # no draw when there are none: the data order of runs without repairs is unchanged
        batch: list[Encoded] = []
        width = 0
        for i in rng.permutation(len(pool))[:64].tolist():  # at most 64 candidates per micro-batch
            w = max(width, len(pool[i].input_ids))
            if batch and w * (len(batch) + 1) > cfg.train.batch_tokens:
                break
            batch.append(pool[i])
            width = w
        out.append(batch)
    return out


def step_seed(seed: int, step: int) -> int:
    """The torch seed of optimizer step `step` (dropout): a resumed run draws what an uninterrupted one would."""
    return int(np.random.default_rng([seed, step, 1]).integers(2**63 - 1))


def pretrain(cfg: RunConfig, corpora: Sequence[str | Path], out: str | Path, console: Any = None, progress: bool = True,
             stop_after: int | None = None, zero_stage: int | None = None, device: str | None = None,
             command: str | None = None) -> dict[str, Any]:
    """Train the prior into `out` (resuming a checkpoint there); returns the final report (also in the card).
    `stop_after`: end this call after that many more steps, leaving a checkpoint (tests, time slices).
    `zero_stage` (2): this process is one rank of a DeepSpeed data-parallel group (ttt.ds.DeepSpeedRunner):
    every rank trains on its share of each step's micro-batches and evaluates its share of the held-out
    tasks; rank 0 alone writes `out`. `device`: where this process loads the model (a rank's GPU).
    `command`: what the model card says made it (default: this process's command line)."""
    from rich.console import Console

    from solve.sandbox.pool import Sandbox
    from ttt.lora import lora_parameters, reset_adapter, save_adapter, wrap_lora
    from ttt.models import load_model

    ranks = Ranks(zero_stage)
    if zero_stage is not None and (cfg.pretrain.full_model or zero_stage != 2):
        raise PretrainError("pretraining under deepspeed trains a LoRA adapter with ZeRO-2 (placement.zero_stage=2, "
                            "pretrain.full_model=false); the full model trains in one process")
    console = console if console is not None and ranks.lead else Console(quiet=not ranks.lead)
    out = Path(out)
    if ranks.lead:
        out.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    _check_resume(out, cfg)
    started = time.monotonic()
    corpus = load_corpus(corpora)
    train_tasks, heldout, larger = choose_tasks(corpus, cfg.pretrain.max_grid_side, cfg.pretrain.heldout_tasks)
    programs, grids = synthetic_examples(train_tasks, corpus.sources)
    repairs, repair_counts = repair_examples(repair_pick(train_tasks, cfg.pretrain.repair_tasks), corpus.sources,
                                             cfg.pretrain.repairs_per_task if cfg.pretrain.repair_share > 0 else 0,
                                             cfg.run.seed, sandbox_config=cfg.sandbox)
    real, real_reports = real_examples(cfg.pretrain.real_datasets, cfg.pretrain.real_samples_per_task, cfg.run.seed,
                                      cfg.pretrain.max_grid_side)
    model, tokenizer = load_model(cfg.model if device is None else cfg.model.model_copy(update={"device": device}))
    if cfg.pretrain.full_model:
        # fp32 master weights: AdamW steps on bf16 weights (model.dtype auto on a GPU) round most updates
        # away. The forward still runs in bf16 under autocast on a GPU (ttt.nll.autocast_for).
        model = model.float()
        for p in model.parameters():
            p.requires_grad_(True)
        params = [p for p in model.parameters()]
    else:
        model = wrap_lora(model, cfg.lora, cfg.model.adapter)
        reset_adapter(model, cfg.train.seed)
        params = lora_parameters(model)
    enc_programs, drop_p = encode_examples(tokenizer, programs, cfg.train.max_seq_len, cfg.solve.program_draft,
                                           cfg.pretrain.header_label_share)
    enc_grids, drop_g = encode_examples(tokenizer, grids + real, cfg.train.max_seq_len)
    enc_repairs, drop_r = encode_examples(tokenizer, repairs, cfg.train.max_seq_len, cfg.solve.program_draft,
                                          cfg.pretrain.header_label_share)
    pools = Pools(enc_programs, enc_grids, enc_repairs)
    if not pools.programs and not pools.grids:
        raise PretrainError(f"no training example fits train.max_seq_len={cfg.train.max_seq_len}")
    fingerprint = corpus_fingerprint(train_tasks, heldout)
    data = {
        "fingerprint": fingerprint,
        "corpora": corpus.reports, "larger_than_max_side": larger, "synthetic_train_tasks": len(train_tasks), "heldout_tasks": [t.id for t in heldout],
        "program_examples": len(enc_programs), "grid_examples": len(enc_grids), "dropped_too_long": drop_p + drop_g + drop_r,
        "repair_examples": len(enc_repairs), "repairs": repair_counts.to_dict(),
        "real_datasets": real_reports, "real_examples": len(real),
    }
    console.print(f"pretrain: {len(enc_programs)} program, {len(enc_repairs)} repair and {len(enc_grids)} grid examples "
                  f"({len(train_tasks)} synthetic tasks, {len(real)} real-task samples; {len(heldout)} tasks held out)")
    for r in real_reports:
        console.print(f"  {r['dataset']}: {r['total'] - r['excluded']} of {r['total']} tasks used, {r['excluded']} excluded (share a grid with an evaluation set)")

    if zero_stage is None:
        runner: Any = LocalRunner()
    else:
        from ttt.ds import DeepSpeedRunner

        runner = DeepSpeedRunner(model, cfg.train, zero_stage)
    runner.start(model, params, cfg.train)
    step, history, evals, tokens_total, train_s = _resume(out, model, params, runner, fingerprint, ranks)
    if ranks.lead:
        _truncate_log(out / LOG, step)  # steps after the last checkpoint are run again: their lines go
    device = model_device(model)
    pad = pad_id(tokenizer)
    set_checkpointing(model, cfg.train.gradient_checkpointing)
    log = open(out / LOG, "a") if ranks.lead else None
    end_step = cfg.train.steps if stop_after is None else min(cfg.train.steps, step + stop_after)
    save = lambda: _save_checkpoint(out, step, params, runner, history, evals, tokens_total, train_s, cfg, fingerprint, ranks)  # noqa: E731
    with Sandbox(cfg.sandbox) as sandbox, _bar(console, progress and ranks.lead) as bar:
        job = bar.add_task("pretrain", total=cfg.train.steps, completed=step, loss="", tps="")
        while step < end_step:
            t0 = time.monotonic()
            model.train()
            mine = draw_step(pools, step, cfg.run.seed, cfg, ranks.world)[ranks.rank :: ranks.world]
            mbs = [collate([(e.input_ids, e.labels) for e in b], pad).to(device) for b in mine]
            # dropout's draws, like the data, depend on the step (and rank) alone
            torch.manual_seed(step_seed(cfg.train.seed, step) + ranks.rank)
            loss = runner.mean(train_step(model, mbs, runner.backward, runner.step))
            n_tok = sum(runner.all_gather([sum(mb.n_tokens for mb in mbs)]))
            dt = time.monotonic() - t0
            step += 1
            tokens_total += n_tok
            train_s += dt
            history.append(loss)
            if log is not None:
                log.write(json.dumps({"step": step, "loss": round(loss, 5), "tokens": n_tok, "seconds": round(dt, 3)}) + "\n")
                log.flush()
            bar.update(job, completed=step, loss=f"loss {np.mean(history[-20:]):.3f}", tps=f"{tokens_total / train_s:.0f} tok/s")
            if cfg.pretrain.eval_every and step % cfg.pretrain.eval_every == 0 and step < cfg.train.steps:
                evals.append({"step": step, **_evaluate(model, tokenizer, heldout, sandbox, cfg, runner, ranks)})
                console.print(f"eval at step {step}: {evals[-1]}")
            if step % cfg.pretrain.checkpoint_every == 0 or step == end_step:
                save()
        if step >= cfg.train.steps and (not evals or evals[-1]["step"] != step):
            evals.append({"step": step, **_evaluate(model, tokenizer, heldout, sandbox, cfg, runner, ranks)})
            console.print(f"eval at step {step}: {evals[-1]}")
            save()
    if log is not None:
        log.close()
    model.eval()
    report = {
        "steps": step, "done": step >= cfg.train.steps, "loss_first": history[0] if history else None,
        "loss_last": float(np.mean(history[-20:])) if history else None, "tokens": tokens_total,
        "tokens_per_s": round(tokens_total / train_s, 1) if train_s else None, "train_seconds": round(train_s, 1),
        "evals": evals, "data": data, "command": command or " ".join(sys.argv), "seconds_this_call": round(time.monotonic() - started, 1),
        "ranks": ranks.world, "zero_stage": zero_stage,
    }
    if not ranks.lead:
        return report
    if report["done"]:
        if cfg.pretrain.full_model:
            model.save_pretrained(out / "model")
            tokenizer.save_pretrained(out / "tokenizer")
        else:
            save_adapter(model, out)
            _weights_to_bf16(out / "adapter_model.safetensors")
            (out / "README.md").unlink(missing_ok=True)  # peft's empty template; MODEL_CARD.md says how it was made
        write_card(out, cfg, report)
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    return report


def _weights_to_bf16(path: Path) -> None:
    """Store the adapter in bfloat16: half the size (SmolLM2-135M r16: 9.8 MB, not 19.5), and its
    rounding (~3 significant digits) is far below what one TTT step changes. Loading casts back."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}, str(path), metadata={"format": "pt"})


def _evaluate(model, tokenizer, heldout, sandbox, cfg: RunConfig, runner, ranks: Ranks) -> dict[str, Any]:
    """Each rank evaluates held-out tasks r, r + world, ... (task i sampled with seed + i, as in one
    process); the counts are gathered on every rank."""
    was = model.training
    model.eval()
    try:
        mine = [task_counts(model, tokenizer, heldout[i], cfg.run.seed + i, sandbox, cfg.solve, cfg.pretrain.eval_programs)
                for i in range(ranks.rank, len(heldout), ranks.world)]
        return summarize(runner.all_gather(mine))
    finally:
        model.train(was)


def _bar(console, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                    TextColumn("{task.fields[tps]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled)


def _check_resume(out: Path, cfg: RunConfig) -> None:
    """A checkpoint in `out` made with another config is refused, naming the keys that differ."""
    saved = _checkpoint_dir(out) / "config.yaml"
    if not saved.is_file():
        return
    import yaml

    old, new = yaml.safe_load(saved.read_text()), yaml.safe_load(dump_config(cfg))
    diff = [f"{s}.{k}" for s in sorted(set(old) | set(new)) for k in sorted(set(old.get(s, {})) | set(new.get(s, {})))
            if old.get(s, {}).get(k) != new.get(s, {}).get(k)]
    if diff:
        raise PretrainError(f"{out} holds a checkpoint made with another config (differs in {', '.join(diff)}); use a new --out")


def _checkpoint_dir(out: Path) -> Path:
    """The checkpoint to resume: `checkpoint/`, or `checkpoint.old/` when a crash fell between the two renames."""
    final, old = out / CHECKPOINT, out / f"{CHECKPOINT}.old"
    return final if final.is_dir() or not old.is_dir() else old


def _save_checkpoint(out: Path, step, params, runner, history, evals, tokens_total, train_s, cfg: RunConfig, fingerprint,
                     ranks: Ranks) -> None:
    """Trainable weights, optimizer and schedule, progress: written to a temp dir, then swapped in. Under
    DeepSpeed the optimizer state is partitioned: every rank writes its part (DeepSpeed's own checkpoint,
    frozen base weights left out) into the temp dir before rank 0 swaps it in."""
    import shutil

    tmp = out / f"{CHECKPOINT}.tmp"
    if ranks.lead:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    ranks.barrier()
    if ranks.dist is not None:
        runner.engine.save_checkpoint(str(tmp / DS_DIR), tag=DS_TAG, exclude_frozen_parameters=True, save_latest=False)
        ranks.barrier()
    if ranks.lead:
        local = ranks.dist is None
        torch.save({
            "step": step, "weights": [p.detach().cpu() for p in params],
            "optimizer": runner.optimizer.state_dict() if local else None, "scheduler": runner.scheduler.state_dict() if local else None,
            "history": history, "evals": evals, "tokens": tokens_total, "train_seconds": train_s, "fingerprint": fingerprint,
            "ranks": ranks.world,
        }, tmp / STATE)
        (tmp / "config.yaml").write_text(dump_config(cfg))
        final, old = out / CHECKPOINT, out / f"{CHECKPOINT}.old"
        if final.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # a crash after an earlier swap may have left it
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    ranks.barrier()


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))


def _resume(out: Path, model, params, runner, fingerprint: dict, ranks: Ranks) -> tuple[int, list[float], list[dict], int, float]:
    path = _checkpoint_dir(out) / STATE
    if not path.is_file():
        return 0, [], [], 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise PretrainError(f"{path}: the checkpoint was made on other training or held-out tasks (another --corpus?); "
                            "resume with the same corpora, or use a new --out")
    if len(state["weights"]) != len(params):
        raise PretrainError(f"{path}: checkpoint has {len(state['weights'])} tensors, the model {len(params)}")
    made_by = state.get("ranks", 1)
    if made_by != ranks.world or (state["optimizer"] is None) != (ranks.dist is not None):
        how = lambda n, ds: f"{n} deepspeed rank(s)" if ds else "one process"  # noqa: E731
        raise PretrainError(f"{path}: the checkpoint was made by {how(made_by, state['optimizer'] is None)}, this run is "
                            f"{how(ranks.world, ranks.dist is not None)}: each step's data depends on the number of ranks; "
                            "resume as it was made, or use a new --out")
    with torch.no_grad():
        for p, w in zip(params, state["weights"]):
            p.copy_(w.to(p.device, p.dtype))
    if ranks.dist is None:
        runner.optimizer.load_state_dict(state["optimizer"])
        runner.scheduler.load_state_dict(state["scheduler"])
    else:
        runner.engine.load_checkpoint(str(path.parent / DS_DIR), tag=DS_TAG, load_module_strict=False, load_optimizer_states=True,
                                      load_lr_scheduler_states=False)
        runner.steps = state["step"]  # DeepSpeedRunner's warmup + decay position
    return state["step"], list(state["history"]), list(state["evals"]), int(state["tokens"]), float(state["train_seconds"])
