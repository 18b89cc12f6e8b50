"""The one run config: a typed schema composed of each package's section, loaded from YAML values
plus dotted `--set a.b=value` overrides, with every problem reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from augment.config import AugmentConfig
from solve.pipeline.modes import mode_help
from solve.sandbox.config import SandboxConfig
from solve.synth.program import PROGRAM_HEADER
from ttt.config import KV_TOKENS, PREFILL_TOKENS, LoraConfig, ModelConfig, TrainConfig

# What an answer in the program format (ttt.prompts.program_answer) of a synthetic program opens with.
PROGRAM_DRAFT = "```python\n" + PROGRAM_HEADER


class SolveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["code", "grid", "hybrid"] = Field(
        "hybrid", description=mode_help()
    )
    program_views: int = Field(2, ge=0, description="augmented views of the task the model writes programs for (identity first)")
    programs_per_view: int = Field(4, ge=0, description="programs sampled per view, in one batched generate")
    program_max_new_tokens: int = Field(384, ge=16, description="token cap for one generated program")
    temperature: float = Field(0.8, ge=0.0, description="sampling temperature for programs (0 = greedy)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling for programs")
    grid_views: int = Field(4, ge=0, description="augmented views under which the model predicts test grids directly")
    grid_samples_per_view: int = Field(1, ge=1, description="grid predictions per view (1 = greedy only)")
    grid_temperature: float = Field(0.7, ge=0.0, description="temperature for grid samples beyond the first (greedy) one")
    score_views: int = Field(4, ge=1, description="augmented views used to score each grid candidate (product of experts)")
    batch_size: int = Field(8, ge=1, description="sequences per generate call (sampler hf) and per scoring batch")
    sampler: Literal["batched", "hf"] = Field(
        "batched", description="batched: one prefill per prompt shared by its samples, many sequences per decode step, "
        "stop at the answer's end (ttt.decoding.decode); hf: transformers' generate (the baseline; always used under deepspeed)"
    )
    merge_adapter: bool = Field(True, description="sample with the LoRA adapter merged into the base weights (restored bit for bit after)")
    decode_rows: int = Field(32, ge=1, description="sampler batched: most sequences decoded together per step")
    decode_kv_tokens: int = Field(
        KV_TOKENS, ge=1, description="sampler batched: most KV-cache tokens decoded together (rows x (longest prompt + answer "
        "cap)); on CUDA rows are also capped by free memory, and halved after an out-of-memory error"
    )
    prefill_tokens: int = Field(
        PREFILL_TOKENS, ge=1, description="sampler batched: most tokens per prefill forward (prompts x positions); longer "
        "prefills run in pieces after the cache of the ones before"
    )
    program_draft: str = Field(
        PROGRAM_DRAFT, description="sampler batched: the text a program answer is expected to open with (the synthetic programs' "
        "header), checked in one forward per prompt as a speculative draft: exact (a model that writes otherwise rejects it at "
        "its first differing token), ~25 decode steps fewer per program when kept; '' turns it off"
    )
    grid_search: Literal["greedy", "sample", "dfs"] = Field(
        "sample", description="direct grid predictions per view: greedy (one), sample (greedy + grid_samples_per_view - 1 "
        "samples), dfs (every grid of probability >= dfs_min_prob, greedy included; ttt.decoding.grid_search)"
    )
    dfs_min_prob: float = Field(0.1, gt=0.0, le=1.0, description="grid_search dfs: probability threshold of a grid (at most 1/p live prefixes)")
    dfs_max_candidates: int = Field(8, ge=1, description="grid_search dfs: most grids kept per view and test input, most likely first")

    # DSL program search (solve.dsl_search): programs found by typed enumeration, no model needed.
    dsl_search_depth: int = Field(
        0, ge=0, le=4, description="DSL program search before TTT: calls per program (1 = every single call, 2+ = best-first "
        "deeper within dsl_search_s); its solutions and near misses are verified and voted with the model's (0 = off)"
    )
    dsl_search_s: float = Field(10.0, gt=0, description="wall-clock budget of the DSL program search per task, seconds")
    dsl_search_keep: int = Field(
        4, ge=0, description="DSL search: most near misses (right shape, most cells right) kept as refinement parents"
    )

    # Test-time search over programs (solve.pipeline.search): rounds after the first sampling + verification.
    rounds: int = Field(
        0, ge=0, description="search rounds after the first programs are verified, each: train on hindsight-relabelled programs, "
        "revise the best partial ones, sample again, verify (0 = one pass, no search stage)"
    )
    refine_top_k: int = Field(
        0, ge=0, description="per round, the best partial programs (train accuracy, then cells) the model revises from their "
        "differences, plus max(1, k // 2) crossovers of two that fail on different pairs (0 = no revisions)"
    )
    round_steps: int = Field(8, ge=0, description="adapter training steps per search round, on hindsight + grid leave-one-out samples")
    hindsight_cap: int = Field(32, ge=0, description="most hindsight samples (programs relabelled as solving their own outputs) per round")
    search_fraction: float = Field(
        0.5, gt=0, le=1, description="share of the task's remaining time (when the search starts) that the rounds may use "
        "(mode code, where no transduction follows: all of it)"
    )

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> "SolveConfig":
        if self.grid_search != "sample" and self.grid_samples_per_view > 1:
            raise ValueError(f"grid_samples_per_view={self.grid_samples_per_view} only applies to grid_search: sample "
                             f"(grid_search is {self.grid_search})")
        return self


class PlacementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["single", "per_gpu", "deepspeed"] = Field(
        "single", description="single: one process; per_gpu: one worker per device pulling tasks; deepspeed: ZeRO across ranks"
    )
    workers: int = Field(
        0, ge=0, description="per_gpu workers (0 = one per visible GPU, or 1 on CPU); with --executor ray, actors "
        "(0 = as many as the cluster holds)"
    )
    cpus_per_worker: int = Field(
        0, ge=0, description="--executor ray: CPU cores each actor reserves, its torch threads and sandbox share (0 = the "
        "cluster's CPUs shared among its GPU actors, or 1 on a CPU cluster)"
    )
    gpus_per_worker: float = Field(
        1.0, gt=0, description="--executor ray: GPUs each actor reserves when the model may use one (1 = one actor per GPU)"
    )
    zero_stage: Literal[2, 3] = Field(2, description="DeepSpeed ZeRO stage for placement.mode=deepspeed: 2 shards optimizer state; 3 also the weights (models that do not fit one card; see ttt/ds.py)")
    ranks: int = Field(
        0, ge=0, description="deepspeed ranks that `arc-ttt run` launches when it is not already a rank (0 = one per visible GPU, 1 on CPU)"
    )
    recycle_every: int = Field(0, ge=0, description="restart a per_gpu worker after this many tasks (0 = never)")
    stagger_starts: bool = Field(
        True, description="per_gpu workers load the model one at a time (each after the previous one reported it loaded, "
        "or died): host RAM holds one load's transient copy at a time, not one per worker"
    )
    collective_timeout_s: float = Field(
        600.0, gt=0, description="deepspeed: seconds a rank waits in a collective before the task fails instead of hanging "
        "(stage agreements, gathering samples and candidates from slower ranks)"
    )
    train_collective_timeout_s: float = Field(
        120.0, gt=0, description="deepspeed: the same for the training process group (gradients, ZeRO-3 gathers, "
        "out-of-memory agreement), whose collectives take seconds; at most collective_timeout_s"
    )


class RunSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="seed for augmentation, adapter init, training order and sampling")
    task_timeout_s: float | None = Field(
        None, gt=0,
        description="wall-clock cap per task (all stages); None = no deadline inside the pipeline (under a global deadline the "
        "planner's share still applies), but per_gpu still kills a worker whose task runs past 1 h + 2 min (a hang guard, "
        "solve.placement.per_gpu.DEFAULT_TASK_CAP_S + WATCHDOG_MARGIN_S)",
    )
    ttt_time_fraction: float = Field(
        0.5, gt=0, le=1, description="share of a task's remaining time that training may use when the task has a deadline"
    )
    eval_loo_nll: bool = Field(
        False, description="also adapt once per held-out train pair and record its NLL (costly; for ablations)"
    )
    eval_nll: bool = Field(True, description="when test outputs are known, record their NLL before and after adaptation")
    save_candidates: bool = Field(
        True, description="write every sampled program and grid candidate, with scores, to DIR/tasks/<task_id>.json (size-capped)"
    )
    adapter_cache: str | None = Field(
        None,
        description="directory of trained adapters to reuse: the ttt stage loads <dir>/<key>/<task_id>.safetensors (LoRA "
        "weights only, + its training record as .json) instead of training when one exists, else trains and saves it; the "
        "key hashes everything that decides training (model, lora, augment, train sections, run.seed, the task, planned "
        "steps). Training cut by a deadline is not saved; off under deepspeed ranks. ablate/sweep set it to DIR/adapters",
    )


class PretrainSection(BaseModel):
    """`arc-ttt pretrain`: the program prior. Steps, lr, batch and sequence sizes are the `train` section's."""

    model_config = ConfigDict(extra="forbid")

    program_share: float = Field(
        0.7, ge=0, le=1, description="share of training samples whose target is a program (code from examples); the rest are grids"
    )
    repair_share: float = Field(
        0.0, ge=0, le=1,
        description="share of the program micro-batches that are repair samples (solve.pretrain.repair: a known program with one "
        "call or constant changed, shown with its sandbox outcomes in test-time search's refinement prompt -> the original); "
        "0 = none are made",
    )
    repairs_per_task: int = Field(
        2, ge=0, description="repair samples made per synthetic training task (its mutants that run and are wrong on a train pair)"
    )
    repair_tasks: int | None = Field(
        None, ge=1, description="at most this many training tasks (the smallest id hashes) give repair samples: every mutant runs "
        "in the sandbox before training starts (~0.1 s a task on 2 workers); null = all"
    )
    real_datasets: list[str] = Field(
        default_factory=lambda: ["arc-agi-1/training", "arc-agi-2/training"],
        description="real training tasks added as grid samples, minus every task sharing a grid with an evaluation set (enforced)",
    )
    real_samples_per_task: int = Field(4, ge=0, description="augmented leave-one-out grid samples per real task")
    max_grid_side: int = Field(30, ge=1, le=30, description="use only tasks whose grids are all at most this many cells a side (short prompts on a CPU)")
    heldout_tasks: int = Field(24, ge=0, description="synthetic tasks held out of training, for the periodic evaluation (real "
                               "tasks with programs, `real-` ids, are never held out: their views would straddle the split)")
    header_label_share: float = Field(
        0.125, ge=0, le=1, description="share of program samples whose header (`solve.program_draft`, ~26 tokens of boilerplate "
        "before the first call) keeps its loss; in the rest only the body is learned. Above 0 so the model still opens with the "
        "draft the sampler checks; 1 = every token learned"
    )
    eval_every: int = Field(200, ge=0, description="evaluate every N steps (0 = only at the end)")
    eval_programs: int = Field(2, ge=1, description="programs sampled per held-out task at evaluation (temperature of `solve`)")
    checkpoint_every: int = Field(50, ge=1, description="write a resumable checkpoint every N steps")
    full_model: bool = Field(False, description="train every weight instead of a LoRA adapter (the output is then a model dir)")


class RunConfig(BaseModel):
    """Everything a run needs; `arc-ttt run --config X.yaml --set section.key=value`."""

    model_config = ConfigDict(extra="forbid")

    run: RunSection = Field(default_factory=RunSection, description="seeds and per-task limits")
    model: ModelConfig = Field(default_factory=ModelConfig, description="which base model and how to load it")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="the per-task LoRA adapter")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="training samples per task")
    train: TrainConfig = Field(default_factory=TrainConfig, description="test-time training of the adapter")
    solve: SolveConfig = Field(default_factory=SolveConfig, description="sampling programs and grids, choosing attempts")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="running generated programs")
    placement: PlacementConfig = Field(default_factory=PlacementConfig, description="processes and devices")
    pretrain: PretrainSection = Field(default_factory=PretrainSection, description="`arc-ttt pretrain`: the program prior")


class ConfigError(ValueError):
    """Every problem with a config, one per line, each naming the dotted key."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.steps=16' -> (['train', 'steps'], 16); the value is read as YAML (so 1e-4, true, [a, b] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValueError(f"override {text!r}: value is not valid YAML ({e})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> list[str]:
    """Set dotted keys in `data` in place; return the problems found (all of them)."""
    problems = []
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ValueError as e:
            problems.append(str(e))
            continue
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{'.'.join(path[: i + 1])}: is a value, cannot set {'.'.join(path)}")
                break
            node = child
        else:
            node[path[-1]] = value
    return problems


def _format(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = "" if e["type"] == "missing" else f" (got {e['input']!r})"
        out.append(f"{key}: {e['msg']}{got}")
    return out


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, _format(e)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the YAML file's values, then overrides; raises ConfigError listing every problem."""
    source = str(path) if path else "defaults"
    data: Any = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(source, ["file not found"]) from None
        except yaml.YAMLError as e:
            raise ConfigError(source, [f"invalid YAML: {e}"]) from None
        if not isinstance(data, dict):
            raise ConfigError(source, [f"top level must be a mapping of sections, got {type(data).__name__}"])
    problems = apply_overrides(data, list(overrides or []))
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        problems += _format(e)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
