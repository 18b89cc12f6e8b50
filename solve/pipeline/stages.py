"""The per-task pipeline: augment -> adapt -> write programs -> verify -> [search] -> predict grids -> vote.

The search stage (`solve.pipeline.search`: rounds of hindsight training, revision and resampling)
runs only with `solve.rounds` > 0.

`solve_task` runs the stages in order and returns one JSON-able record. Any stage may fail (bad
output, OOM, a bug): the failure is recorded with its stage and traceback, the later model stages are
skipped, and the vote still runs on whatever was produced, so the task keeps partial or placeholder
attempts. The task's deadline is checked before every stage and passed into training and generation;
training gets `run.ttt_time_fraction` of the time left (see `stage_ttt`). With `run.save_candidates`
and a run directory, what the model produced is written to DIR/tasks/<task_id>.json
(`solve.pipeline.artifacts`).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from augment.loo import Sample
from augment.tasks import Task
from augment.transforms import Augmentation
from solve.pipeline.budget import task_deadline
from solve.pipeline.modes import MODES
from solve.pipeline.runconfig import RunConfig
from solve.pipeline.search import stage_search
from solve.pipeline.views import task_views
from solve.select.submission import entry, placeholder_grids
from solve.select.vote import Attempt


class DeadlineReached(RuntimeError):
    """The task's wall-clock budget ran out before this stage."""


@dataclass
class Engine:
    """The base model wrapped with one LoRA adapter, loaded once per process and reused for every task."""

    model: Any
    tokenizer: Any
    # None: plain PyTorch in this process. Else a ttt.train.StepRunner for one of several data-parallel
    # ranks (ttt.ds.DeepSpeedRunner): training goes through it and sampling is split across its ranks.
    runner: Any = None

    @classmethod
    def load(cls, cfg: RunConfig) -> Engine:
        from ttt.lora import wrap_lora
        from ttt.models import load_model

        model, tokenizer = load_model(cfg.model)
        return cls(wrap_lora(model, cfg.lora, cfg.model.adapter), tokenizer)


@dataclass
class TaskState:
    """What the stages produce for one task (in-memory; the record keeps the JSON-able summary)."""

    task: Task
    cfg: RunConfig
    engine: Engine | None
    sandbox: Any
    deadline: float | None
    samples: list[Sample] = field(default_factory=list)
    views: list[Augmentation] = field(default_factory=list)
    # Every sampled program text: (view, text, index into `programs` or None when none was extracted).
    sampled: list[tuple[Augmentation, str, int | None]] = field(default_factory=list)
    programs: list[tuple[Augmentation, str]] = field(default_factory=list)  # (view, source)
    program_logprobs: dict[int, float] = field(default_factory=dict)  # index into `programs` -> the model's log-probability
    program_results: list[Any] = field(default_factory=list)
    dsl_results: list[Any] = field(default_factory=list)  # the DSL search's programs, verified (stage_dsl_search)
    dsl_info: dict[str, Any] = field(default_factory=dict)  # per DSL program id: depth, solution or near miss
    guesses: list[Any] = field(default_factory=list)  # ttt.decoding.sample.GridGuess, every direct grid prediction
    # Per test input, best first: {"grid", "score", "per_view" {view: logp}, "views" [views that predicted it]}.
    candidates: list[list[dict[str, Any]]] = field(default_factory=list)
    score_views: list[str] = field(default_factory=list)
    extras: list[list[tuple[np.ndarray, str, float]]] = field(default_factory=list)  # per test input, best first
    train_steps: int | None = None
    search_rounds: list[dict[str, Any]] = field(default_factory=list)  # per search round, for the artifacts (stage_search)

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def share_deadline(self, fraction: float) -> float | None:
        """A deadline `fraction` of the way from now to the task's deadline (None without one)."""
        left = self.time_left()
        return None if left is None else time.monotonic() + fraction * max(0.0, left)

    def train_cfg(self) -> Any:
        """The train section with the planner's step cap (a budget share or a retry) applied."""
        return self.cfg.train if self.train_steps is None else self.cfg.train.model_copy(update={"steps": self.train_steps})

    @property
    def ranks(self) -> Any:
        """The data-parallel ranks' runner (None in one process): sampling and scoring split across it."""
        return self.engine.runner if self.engine is not None else None

    def mine(self, views: list[Augmentation]) -> list[Augmentation]:
        """This rank's share of the views (all of them in one process)."""
        r = self.ranks
        return views if r is None or r.world == 1 else views[r.rank :: r.world]

    def collect(self, items: list[Any], views: list[Augmentation], everywhere: bool = False) -> list[Any]:
        """Every rank's items (each with a `.view`) in view order as one process makes them: on rank 0
        only ([] elsewhere, whose later stages then have nothing to do), or on every rank."""
        r = self.ranks
        if r is None or r.world == 1:
            return items
        order = {v: i for i, v in enumerate(views)}
        everyone = r.all_gather(items) if everywhere else r.gather(items)
        return sorted(everyone, key=lambda item: order[item.view])  # stable: within a view as sampled

    def agreed(self, flag: bool) -> bool:
        """True when any rank says True (a rank alone must not skip work the others share)."""
        return flag if self.ranks is None else self.ranks.any(flag)

    def out_of_time(self) -> bool:
        """Past the deadline, agreed by all ranks."""
        left = self.time_left()
        return self.agreed(left is not None and left <= 0)

    def deadline_hit(self) -> bool:
        """This rank is past the deadline now (for the record: a stage that ran into it was cut short)."""
        left = self.time_left()
        return left is not None and left <= 0


# --- stages: each takes the state, fills it in, and returns counts for the record -------------------


def stage_augment(s: TaskState) -> dict[str, Any]:
    from ttt.holdout import task_samples

    s.samples, report = task_samples(s.task, s.cfg.augment, s.cfg.run.seed)
    return report.to_dict()


def heldout_nll(s: TaskState) -> float | None:
    """Mean per-token NLL of the true test outputs (when known) under the model as it is now."""
    from ttt.nll import target_nll
    from ttt.prompts import grid_scoring_item

    if s.task.test_outputs is None or not s.cfg.run.eval_nll:
        return None
    n = s.cfg.train.max_seq_len
    items = [grid_scoring_item(s.engine.tokenizer, s.task.train, x, y, n) for x, y in zip(s.task.test_inputs, s.task.test_outputs)]
    return float(np.mean(target_nll(s.engine.model, s.engine.tokenizer, items, ranks=s.ranks)))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def stage_loo_eval(s: TaskState) -> dict[str, Any]:
    """Leave-one-out NLL on train pairs: adapt on the other pairs, score the held-out output.

    A signal that needs no test solutions (ablations on hidden tasks); costs one adaptation per
    train pair, so it only runs with `run.eval_loo_nll`. It is held to the same limits as the main
    adaptation: the planner's step cap, the same samples (every `augment` flag), and with a task
    deadline `run.ttt_time_fraction` of the time left, which training stops at and which no new
    pair starts past (`stopped_by`: "deadline"; `pairs` counts the pairs scored). The main
    adaptation that follows resets the adapter, so nothing leaks into it.
    """
    from ttt.holdout import adapt_and_score, hold_out

    a = s.cfg.augment
    if not s.cfg.run.eval_loo_nll or len(s.task.train) < (2 if a.allow_single_pair else 3):
        return {"skipped": True}  # without allow_single_pair, 2 pairs leave 1: no leave-one-out sample
    train_cfg = s.train_cfg()
    deadline = s.share_deadline(s.cfg.run.ttt_time_fraction)
    before, after, steps, stopped_by = [], [], [], "pairs"
    for i in range(len(s.task.train)):
        if s.agreed(deadline is not None and time.monotonic() >= deadline):
            stopped_by = "deadline"
            break
        r = adapt_and_score(s.engine.model, s.engine.tokenizer, hold_out(s.task, i), train_cfg, a, s.cfg.run.seed, s.ranks, deadline)
        before += r["nll_before"]
        after += r["nll_after"]
        steps.append(r["steps"])
        stopped_by = "deadline" if r["stopped_by"] == "deadline" else stopped_by
    return {
        "pairs": len(after), "steps": steps, "stopped_by": stopped_by,
        "nll_before": _mean(before), "nll_after": _mean(after),
    }


def stage_ttt(s: TaskState) -> dict[str, Any]:
    """Reset the adapter and train it. With a task deadline, training may use `run.ttt_time_fraction`
    of the time left when this stage starts (so sampling and verification keep the rest); the
    held-out NLL passes before and after are part of the stage's time, not of `train_seconds`.

    With `run.adapter_cache`, an adapter trained before on the same inputs (`adapter_cache_key`) is
    loaded instead of training: the record keeps that training's fields (steps, losses,
    `train_seconds`) and says `cached: true`; otherwise the adapter is trained and saved there."""
    from ttt.lora import reset_adapter
    from ttt.train import adapt

    train_cfg = s.train_cfg()
    train_deadline = s.share_deadline(s.cfg.run.ttt_time_fraction)
    reset_adapter(s.engine.model, train_cfg.seed)  # a fresh adapter computes exactly the base model
    nll_before = heldout_nll(s)  # on the reset adapter, cached or not: the same number either way
    entry = adapter_cache_entry(s, train_cfg)
    info, problem = load_cached_adapter(s.engine.model, entry) if entry else (None, None)
    if info is None:
        info = adapt(s.engine.model, s.engine.tokenizer, s.samples, train_cfg, train_deadline, runner=s.engine.runner).to_dict()
        losses = info.pop("losses", [])
        first, last = (losses[0], losses[-1]) if losses else (None, None)
        info["train_seconds"] = round(info.pop("seconds"), 3)  # the stage's `seconds` also covers the NLL passes
        info |= {"loss_first": first, "loss_last": last, "losses": losses}
        if entry:
            info |= save_cached_adapter(s.engine.model, entry, info) | ({"cache_error": problem} if problem else {})
    return info | {"nll_before": nll_before, "nll_after": heldout_nll(s)}


@dataclass(frozen=True)
class AdapterCacheEntry:
    """Where one task's trained adapter lives in `run.adapter_cache`: DIR/<key>/<task_id>.safetensors
    (LoRA weights only) and .json beside it (the training record of the stage that made it)."""

    key: str
    weights: Path
    record: Path


def _prior_digest(adapter: str | None) -> str | None:
    """sha256 of the prior adapter's weights file (None without a prior)."""
    if adapter is None:
        return None
    import hashlib

    from ttt.lora import ADAPTER_WEIGHTS, resolve_adapter_dir

    return hashlib.sha256((resolve_adapter_dir(adapter) / ADAPTER_WEIGHTS).read_bytes()).hexdigest()


def adapter_cache_key(s: TaskState, train_cfg: Any) -> str:
    """A hash of every input that decides the trained adapter: the model, lora, augment and train
    sections (with the planner's step cap applied), run.seed (the augmentation stream), the task id
    and its train pairs (what the samples are made of). Code changes are not in it."""
    import hashlib
    import json

    pairs = hashlib.sha256()
    for pair in s.task.train:
        for g in (pair.input, pair.output):
            pairs.update(repr(g.shape).encode() + np.ascontiguousarray(g, dtype=np.uint8).tobytes())
    inputs = {
        **s.cfg.model_dump(mode="json", include={"model", "lora", "augment"}),
        "train": train_cfg.model_dump(mode="json"),
        "run.seed": s.cfg.run.seed, "task": s.task.id, "train_pairs": pairs.hexdigest(),
        "prior": _prior_digest(s.cfg.model.adapter),  # a retrained prior at the same path is another start
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def adapter_cache_entry(s: TaskState, train_cfg: Any) -> AdapterCacheEntry | None:
    """This task's cache entry, or None without `run.adapter_cache` or under data-parallel ranks
    (ZeRO-3 weights are partitioned; one process per task keeps loading and saving simple)."""
    import re

    if s.cfg.run.adapter_cache is None or s.engine.runner is not None:
        return None
    key = adapter_cache_key(s, train_cfg)
    stem = Path(s.cfg.run.adapter_cache) / key / re.sub(r"[^A-Za-z0-9._-]", "_", s.task.id)
    return AdapterCacheEntry(key, stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json"))


def adapter_state(model: Any) -> dict[str, Any]:
    """The trainable LoRA weights by name, in `named_parameters` order (`ttt.lora.lora_parameters`' set)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}


def load_cached_adapter(model: Any, entry: AdapterCacheEntry) -> tuple[dict[str, Any] | None, str | None]:
    """(the cached training record, None) with its weights copied into the adapter; (None, None)
    when the entry is absent; (None, why) when it is unreadable or does not fit the model (then the
    task trains again and overwrites it)."""
    import json

    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (entry.weights.is_file() and entry.record.is_file()):
        return None, None
    try:
        record = json.loads(entry.record.read_text())
        state = load_file(str(entry.weights))
    except (OSError, ValueError, SafetensorError) as e:
        return None, f"{type(e).__name__}: {e}"[:300]
    params = adapter_state(model)
    if set(state) != set(params) or any(state[n].shape != p.shape for n, p in params.items()):
        return None, "cached weights do not fit this adapter"
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.device, p.dtype))
    model.eval()  # as training leaves it
    return record | {"cached": True, "cache_key": entry.key}, None


def save_cached_adapter(model: Any, entry: AdapterCacheEntry, record: dict[str, Any]) -> dict[str, Any]:
    """Save the trained weights and `record` (each written to a temp file and renamed, so a reader
    sees whole files or none); returns the cache fields for the stage's record. Saving is best
    effort: a full disk must not fail a task whose training worked."""
    import json
    import os

    from safetensors.torch import save_file

    fields: dict[str, Any] = {"cached": False, "cache_key": entry.key, "cache_saved": False}
    if record.get("stopped_by") == "deadline" or record.get("out_of_memory"):
        return fields  # a cut (or memory-halved) adapter depends on the machine, not only on the key's inputs
    try:
        entry.weights.parent.mkdir(parents=True, exist_ok=True)
        state = {n: p.detach().to("cpu").contiguous().clone() for n, p in adapter_state(model).items()}
        tmp = entry.weights.with_name(f".{entry.weights.name}.{os.getpid()}.tmp")
        save_file(state, str(tmp))
        os.replace(tmp, entry.weights)
        tmp = entry.record.with_name(f".{entry.record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, entry.record)
    except OSError as e:
        return fields | {"cache_error": f"{type(e).__name__}: {e}"[:300]}
    return fields | {"cache_saved": True}


def stage_dsl_search(s: TaskState) -> dict[str, Any]:
    """Search DSL programs (solve.dsl_search) within `solve.dsl_search_s` (or the time left), then verify
    its solutions and near misses in the sandbox like any program: they join the model's programs in
    the vote, and the near misses are refinement parents for the search rounds. Needs no model."""
    from augment.transforms import Augmentation
    from solve.dsl_search.coverage import program_body
    from solve.dsl_search.search import search_task
    from solve.sandbox.verify import Candidate, verify

    c = s.cfg.solve
    if c.dsl_search_depth <= 0:
        return {"skipped": True}
    left = s.time_left()
    seconds = c.dsl_search_s if left is None else max(0.0, min(c.dsl_search_s, left))
    result = search_task(s.task, c.dsl_search_depth, seconds, max_solutions=2, near_misses=c.dsl_search_keep)
    found = [(f, "solution") for f in result.solutions] + [(f, "near_miss") for f in result.near_misses]
    candidates = [Candidate(f"dsl{i}", f.source, Augmentation(), None, "dsl") for i, (f, _) in enumerate(found)]
    s.dsl_info = {f"dsl{i}": {"depth": f.depth, "kind": kind} for i, (f, kind) in enumerate(found)}
    if candidates and s.sandbox is not None:  # data-parallel ranks > 0 have no sandbox: rank 0 verifies
        s.dsl_results = verify(s.task, candidates, s.sandbox)
        s.program_results = [*s.dsl_results, *s.program_results]
    stats = {k: v for k, v in result.stats.items() if k != "seconds"}
    return stats | {
        "solutions": len(result.solutions), "near_misses": len(result.near_misses),
        "verified": sum(r.verified for r in s.dsl_results),
        "programs": [program_body(f.source) for f in result.solutions][:2],
        "search_seconds": result.stats["seconds"],
    }


def stage_induction(s: TaskState) -> dict[str, Any]:
    from solve.sandbox.programs import extract_program
    from ttt.decoding.sample import sample_programs

    c = s.cfg.solve
    views = task_views(s.task, s.cfg, c.program_views)
    texts = sample_programs(
        s.engine.model, s.engine.tokenizer, s.task, s.mine(views), c.programs_per_view, c, s.cfg.run.seed, s.time_left(), s.ranks,
        max_seq_len=s.cfg.train.max_seq_len,
    )
    texts = s.collect(texts, views)
    s.sampled, s.programs = [], []
    for t in texts:
        source = extract_program(t.text).source
        s.sampled.append((t.view, t.text, None if source is None else len(s.programs)))
        if source is not None:
            if t.logprob is not None:  # summed over the sampled text, when the sampler gives it
                s.program_logprobs[len(s.programs)] = t.logprob
            s.programs.append((t.view, source))
    return {
        "views": len(views), "sampled": len(texts), "parsed": len(s.programs),
        "shortened_prompts": len({t.view for t in texts if t.shortened}), "deadline_hit": s.deadline_hit(),
    }


def stage_verify(s: TaskState) -> dict[str, Any]:
    from solve.sandbox.verify import Candidate, verify

    candidates = [Candidate(f"p{i}", src, view, s.program_logprobs.get(i)) for i, (view, src) in enumerate(s.programs)]
    model_results = verify(s.task, candidates, s.sandbox) if candidates else []  # ranks > 0 have no sandbox
    s.program_results = [*s.dsl_results, *model_results]  # the DSL search's programs (verified earlier) first
    verified = sum(r.verified for r in model_results)
    partial = sum(r.train_correct > 0 and not r.verified for r in model_results)
    errors: dict[str, int] = {}
    for r in model_results:
        if r.program_error:
            errors[r.program_error] = errors.get(r.program_error, 0) + 1
    return {"distinct": len(model_results), "verified": verified, "partially_correct": partial, "program_errors": errors,
            "verified_total": sum(r.verified for r in s.program_results)}


def _distinct_grids(guesses: list[Any], test_index: int) -> list[tuple[np.ndarray, list[str]]]:
    """The distinct parsed grids predicted for one test input, in first-seen order, each with the
    names of the views that predicted it (once per prediction)."""
    distinct: dict[bytes, tuple[np.ndarray, list[str]]] = {}
    for g in guesses:
        if g.test_index == test_index and g.grid is not None:
            key = bytes(g.grid.shape) + g.grid.tobytes()
            distinct.setdefault(key, (g.grid, []))[1].append(g.view.name)
    return list(distinct.values())


def stage_transduction(s: TaskState) -> dict[str, Any]:
    """Predict every test output directly under `grid_views` views, map each back to the task's frame,
    score the distinct grids by product of experts over `score_views` views, rank them for the vote."""
    from ttt.decoding.sample import GridScores, predict_grids, score_grids

    c = s.cfg.solve
    max_len = s.cfg.train.max_seq_len
    views = task_views(s.task, s.cfg, c.grid_views)
    guesses = predict_grids(
        s.engine.model, s.engine.tokenizer, s.task, s.mine(views), c, s.cfg.run.seed, s.time_left(), s.ranks, max_seq_len=max_len
    )
    s.guesses = s.collect(guesses, views, everywhere=True)  # every rank scores a share of the candidates
    score_views = task_views(s.task, s.cfg, c.score_views)
    s.score_views = [v.name for v in score_views]
    s.extras, s.candidates, n_candidates, scoring_skipped, shortened_scoring = [], [], 0, False, 0
    for i in range(len(s.task.test_inputs)):
        found = _distinct_grids(s.guesses, i)
        grids = [g for g, _ in found]
        if s.out_of_time():  # rank by how many views agreed, unscored
            scores, scoring_skipped = GridScores([0.0] * len(grids), [[] for _ in grids], 0), True
        else:
            scores = score_grids(s.engine.model, s.engine.tokenizer, s.task, i, grids, score_views, ranks=s.ranks, max_seq_len=max_len)
        shortened_scoring += scores.shortened
        ranked = sorted(zip(found, scores.total, scores.per_view), key=lambda x: (-x[1], -len(x[0][1])))
        s.extras.append([(g, f"grid (views={len(by)}, logp={sc:.2f})", sc) for (g, by), sc, _ in ranked])
        s.candidates.append([
            {"grid": g, "score": round(sc, 4), "per_view": dict(zip(s.score_views, (round(x, 4) for x in pv))), "views": by}
            for (g, by), sc, pv in ranked
        ])
        n_candidates += len(grids)
    return {
        "views": len(views), "predictions": len(s.guesses), "parsed": sum(g.grid is not None for g in s.guesses),
        "candidates": n_candidates, "scoring_skipped": scoring_skipped,
        "shortened_prompts": len({(g.view, g.test_index) for g in s.guesses if g.shortened}),
        "shortened_scoring": shortened_scoring, "deadline_hit": s.deadline_hit(),
    }


Stage = Callable[[TaskState], dict[str, Any]]
MODEL_STAGES: tuple[tuple[str, Stage], ...] = (
    ("augment", stage_augment),
    ("dsl_search", stage_dsl_search),  # only with solve.dsl_search_depth > 0 (stages_for)
    ("loo_eval", stage_loo_eval),
    ("ttt", stage_ttt),
    ("induction", stage_induction),
    ("verify", stage_verify),
    ("search", stage_search),  # only with solve.rounds > 0 (stages_for)
    ("transduction", stage_transduction),
)


def stages_for(mode: str, rounds: int = 0, dsl_search_depth: int = 0) -> tuple[tuple[str, Stage], ...]:
    """The stages a run with this `solve.mode`, `solve.rounds` and `solve.dsl_search_depth` runs, in
    order (no search stage without rounds, so that `rounds: 0` is the single pass it always was; no
    DSL search stage at depth 0)."""
    skip = MODES[mode].skipped_stages | (frozenset({"search"}) if rounds <= 0 else frozenset())
    skip |= frozenset({"dsl_search"}) if dsl_search_depth <= 0 else frozenset()
    return tuple((n, f) for n, f in MODEL_STAGES if n not in skip)


def solve_task(
    task: Task,
    cfg: RunConfig,
    engine: Engine | None,
    sandbox: Any,
    deadline: float | None = None,
    train_steps: int | None = None,
    stages: Sequence[tuple[str, Stage]] | None = None,
    on_stage: Callable[[str], None] | None = None,
    artifacts_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every stage for one task; always returns a record with two attempts per test input.

    `artifacts_dir` (a run directory): with `run.save_candidates`, what the model produced (programs,
    grids, scored candidates) is also written to `solve.pipeline.artifacts.artifacts_path(dir, task.id)`.
    Each stage's `seconds` is its whole wall time, so the stages add up to the record's `seconds`."""
    from solve.pipeline.program_rank import rank_scores
    from solve.select.vote import choose_attempts

    start = time.monotonic()
    deadline = task_deadline(start, deadline, cfg.run.task_timeout_s)
    s = TaskState(task, cfg, engine, sandbox, deadline, train_steps=train_steps)
    record: dict[str, Any] = {"task_id": task.id, "status": "ok", "error": None, "stages": {}}
    for name, fn in stages if stages is not None else stages_for(cfg.solve.mode, cfg.solve.rounds, cfg.solve.dsl_search_depth):
        t0 = time.monotonic()
        if on_stage is not None:
            on_stage(name)
        try:
            if deadline is not None and t0 >= deadline:
                raise DeadlineReached(f"task deadline passed before stage '{name}'")
            info = fn(s)
            record["stages"][name] = {**info, "seconds": round(time.monotonic() - t0, 3)}  # a stage's own "seconds" never wins
        except Exception as e:  # recorded with stage and traceback; the vote below still runs
            record["stages"][name] = {"seconds": round(time.monotonic() - t0, 3), "failed": True}
            # Running out of time is the budget working, not a bug: keep it apart from failures.
            record["status"] = "deadline" if isinstance(e, DeadlineReached) else "failed"
            record["error"] = error_record(name, e)
            break
    t0 = time.monotonic()
    scores, rank = {}, {}
    try:  # the model's log-probability of verified programs, only when they disagree (solve.pipeline.program_rank)
        scores, rank = rank_scores(s)
    except Exception as e:  # a tie-break only: the vote below still ranks by weight and length
        rank = {"failed": True}
        record["status"], record["error"] = "failed", record["error"] or error_record("rank", e)
    if rank:
        record["stages"]["rank"] = {**rank, "seconds": round(time.monotonic() - t0, 3)}
    t0 = time.monotonic()
    try:
        chosen = choose_attempts(task, s.program_results, s.extras, MODES[cfg.solve.mode].vote_order, program_scores=scores)
    except Exception as e:  # a vote bug must still leave placeholders in the submission
        chosen = placeholder_choice(task)
        record["status"], record["error"] = "failed", record["error"] or error_record("vote", e)
    record["stages"]["vote"] = {"seconds": round(time.monotonic() - t0, 3)}
    record["attempts"] = entry([[a.grid for a in picks] for picks in chosen])
    record["reasons"] = [[a.reason for a in picks] for picks in chosen]
    record["seconds"] = round(time.monotonic() - start, 3)
    record["score"] = score_record(task, record["attempts"])
    if artifacts_dir is not None and cfg.run.save_candidates:
        save_artifacts(s, record, artifacts_dir)
    return record


def save_artifacts(s: TaskState, record: dict[str, Any], run_dir: Path) -> None:
    """Write the task's artifacts file; a failure to write is noted in the record, never raised (the
    attempts matter more than the log of how they were found)."""
    from solve.pipeline.artifacts import (
        artifacts_path,
        build_artifacts,
        candidate_entries,
        dsl_entries,
        grid_entries,
        program_entries,
        write_artifacts,
    )

    try:
        data = build_artifacts(
            s.task, record, dsl_entries(s.dsl_results, s.dsl_info) + program_entries(s.sampled, s.programs, s.program_results),
            grid_entries(s.guesses),
            candidate_entries(s.candidates), s.score_views, s.search_rounds,
        )
        write_artifacts(artifacts_path(run_dir, s.task.id), data)
    except (OSError, TypeError, ValueError) as e:  # disk full, permissions, an unserializable value
        record["artifacts_error"] = f"{type(e).__name__}: {e}"[:500]


def placeholder_choice(task: Task) -> list[list[Attempt]]:
    """Placeholder attempts built without the vote, for when the vote itself failed."""
    return [
        [Attempt(g, {"tier": "placeholder", "kind": name}) for name, g in placeholder_grids(x)[:2]]
        for x in task.test_inputs
    ]


def error_record(stage: str, e: BaseException) -> dict[str, Any]:
    return {"stage": stage, "type": type(e).__name__, "message": str(e)[:2000], "traceback": traceback.format_exc(limit=20)}


def failed_record(task: Task, stage: str, e: BaseException, seconds: float = 0.0, status: str = "failed") -> dict[str, Any]:
    """A task that failed outside `solve_task` (e.g. its worker died): placeholder attempts."""
    chosen = placeholder_choice(task)
    attempts = entry([[a.grid for a in picks] for picks in chosen])
    return {
        "task_id": task.id, "status": status, "error": error_record(stage, e), "stages": {},
        "attempts": attempts, "reasons": [[a.reason for a in picks] for picks in chosen],
        "seconds": round(seconds, 3), "score": score_record(task, attempts),
    }


def score_record(task: Task, attempts: list[dict[str, Any]]) -> float | None:
    """Fraction of test inputs where either attempt is exactly right (None when outputs are unknown)."""
    if task.test_outputs is None:
        return None
    hits = 0
    for truth, att in zip(task.test_outputs, attempts):
        hits += any(np.array_equal(np.array(att[k], dtype=np.int64), truth) for k in ("attempt_1", "attempt_2"))
    return hits / len(task.test_outputs)
