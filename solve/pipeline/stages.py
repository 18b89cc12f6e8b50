"""The per-task pipeline: augment -> adapt -> write programs -> verify -> predict grids -> vote.

`solve_task` runs the stages in order and returns one JSON-able record. Any stage may fail (bad
output, OOM, a bug): the failure is recorded with its stage and traceback, the later model stages are
skipped, and the vote still runs on whatever was produced, so the task keeps partial or placeholder
attempts. The task's deadline is checked before every stage and passed into training and generation.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from augment.loo import Sample, build_samples
from augment.sets import augmentation_stream, get_set
from augment.tasks import Task
from augment.transforms import Augmentation
from solve.pipeline.budget import task_deadline
from solve.pipeline.modes import MODES
from solve.pipeline.runconfig import RunConfig
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
        return cls(wrap_lora(model, cfg.lora), tokenizer)


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
    programs: list[tuple[Augmentation, str]] = field(default_factory=list)  # (view, source)
    program_results: list[Any] = field(default_factory=list)
    extras: list[list[tuple[np.ndarray, str, float]]] = field(default_factory=list)  # per test input, best first
    train_steps: int | None = None

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

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

    def out_of_time(self) -> bool:
        """Past the deadline, agreed by all ranks (a rank alone must not skip work the others share)."""
        left = self.time_left()
        late = left is not None and left <= 0
        return late if self.ranks is None else self.ranks.any(late)


def task_views(task: Task, cfg: RunConfig, k: int) -> list[Augmentation]:
    """The first `k` distinct task-level augmentations of the configured set (identity first)."""
    if k <= 0:
        return []
    spec = get_set(cfg.augment.set)
    views, seen = [], set()
    stream = augmentation_stream(spec, len(task.train), np.random.default_rng(cfg.run.seed + 1), cfg.augment.permute_background)
    for aug in stream:
        if aug.name not in seen:
            seen.add(aug.name)
            views.append(aug)
        if len(views) >= k or len(seen) > 64 * k:
            break
    return views


# --- stages: each takes the state, fills it in, and returns counts for the record -------------------


def stage_augment(s: TaskState) -> dict[str, Any]:
    rng = np.random.default_rng(s.cfg.run.seed)
    a = s.cfg.augment
    s.samples, report = build_samples(s.task, get_set(a.set), a.n_samples, rng, a.permute_background, a.allow_single_pair)
    return report.to_dict()


def heldout_nll(s: TaskState) -> float | None:
    """Mean per-token NLL of the true test outputs (when known) under the model as it is now."""
    from ttt.nll import target_nll
    from ttt.prompts import grid_scoring_item

    if s.task.test_outputs is None or not s.cfg.run.eval_nll:
        return None
    items = [grid_scoring_item(s.engine.tokenizer, s.task.train, x, y) for x, y in zip(s.task.test_inputs, s.task.test_outputs)]
    return float(np.mean(target_nll(s.engine.model, s.engine.tokenizer, items, ranks=s.ranks)))


def stage_loo_eval(s: TaskState) -> dict[str, Any]:
    """Leave-one-out NLL on train pairs: adapt on the other pairs, score the held-out output.

    A signal that needs no test solutions (ablations on hidden tasks); costs one adaptation per
    train pair, so it only runs with `run.eval_loo_nll`. The main adaptation that follows resets the
    adapter, so nothing leaks into it.
    """
    from ttt.holdout import adapt_and_score, hold_out

    if not s.cfg.run.eval_loo_nll or len(s.task.train) < 3:  # 2 pairs leave 1: no leave-one-out sample
        return {"skipped": True}
    a = s.cfg.augment
    before, after = [], []
    for i in range(len(s.task.train)):
        r = adapt_and_score(
            s.engine.model, s.engine.tokenizer, hold_out(s.task, i), s.cfg.train, a.set, a.n_samples, s.cfg.run.seed, s.ranks
        )
        before += r["nll_before"]
        after += r["nll_after"]
    return {"pairs": len(after), "nll_before": float(np.mean(before)), "nll_after": float(np.mean(after))}


def stage_ttt(s: TaskState) -> dict[str, Any]:
    from ttt.lora import reset_adapter
    from ttt.train import adapt

    train_cfg = s.cfg.train if s.train_steps is None else s.cfg.train.model_copy(update={"steps": s.train_steps})
    reset_adapter(s.engine.model, train_cfg.seed)  # a fresh adapter computes exactly the base model
    nll_before = heldout_nll(s)
    result = adapt(s.engine.model, s.engine.tokenizer, s.samples, train_cfg, s.deadline, runner=s.engine.runner)
    info = result.to_dict()
    losses = info.pop("losses", [])
    first, last = (losses[0], losses[-1]) if losses else (None, None)
    return info | {"loss_first": first, "loss_last": last, "losses": losses, "nll_before": nll_before, "nll_after": heldout_nll(s)}


def stage_induction(s: TaskState) -> dict[str, Any]:
    from solve.sandbox.programs import extract_program
    from ttt.sample import sample_programs

    c = s.cfg.solve
    views = task_views(s.task, s.cfg, c.program_views)
    texts = sample_programs(
        s.engine.model, s.engine.tokenizer, s.task, s.mine(views), c.programs_per_view, c, s.cfg.run.seed, s.time_left(), s.ranks
    )
    texts = s.collect(texts, views)
    found = [(t.view, extract_program(t.text)) for t in texts]
    s.programs = [(v, e.source) for v, e in found if e.source is not None]
    return {"views": len(views), "sampled": len(texts), "parsed": len(s.programs)}


def stage_verify(s: TaskState) -> dict[str, Any]:
    from solve.sandbox.verify import Candidate, verify

    candidates = [Candidate(f"p{i}", src, view) for i, (view, src) in enumerate(s.programs)]
    s.program_results = verify(s.task, candidates, s.sandbox) if candidates else []  # ranks > 0 have no sandbox
    verified = sum(r.verified for r in s.program_results)
    partial = sum(r.train_correct > 0 and not r.verified for r in s.program_results)
    errors: dict[str, int] = {}
    for r in s.program_results:
        if r.program_error:
            errors[r.program_error] = errors.get(r.program_error, 0) + 1
    return {"distinct": len(s.program_results), "verified": verified, "partially_correct": partial, "program_errors": errors}


def stage_transduction(s: TaskState) -> dict[str, Any]:
    from ttt.sample import predict_grids, score_grids

    c = s.cfg.solve
    views = task_views(s.task, s.cfg, c.grid_views)
    guesses = predict_grids(s.engine.model, s.engine.tokenizer, s.task, s.mine(views), c, s.cfg.run.seed, s.time_left(), s.ranks)
    guesses = s.collect(guesses, views, everywhere=True)  # every rank scores a share of the candidates
    score_views = task_views(s.task, s.cfg, c.score_views)
    s.extras, n_candidates, scoring_skipped = [], 0, False
    for i in range(len(s.task.test_inputs)):
        distinct: dict[bytes, tuple[np.ndarray, int]] = {}
        for g in guesses:
            if g.test_index == i and g.grid is not None:
                key = bytes(g.grid.shape) + g.grid.tobytes()
                grid, count = distinct.get(key, (g.grid, 0))
                distinct[key] = (grid, count + 1)
        grids = [grid for grid, _ in distinct.values()]
        counts = [n for _, n in distinct.values()]
        if s.out_of_time():  # rank by how many views agreed, unscored
            scores, scoring_skipped = [0.0] * len(grids), True
        else:
            scores = score_grids(s.engine.model, s.engine.tokenizer, s.task, i, grids, score_views, ranks=s.ranks)
        ranked = sorted(zip(grids, scores, counts), key=lambda x: (-x[1], -x[2]))
        s.extras.append([(g, f"grid (views={n}, logp={sc:.2f})", sc) for g, sc, n in ranked])
        n_candidates += len(grids)
    parsed = sum(g.grid is not None for g in guesses)
    return {
        "views": len(views), "predictions": len(guesses), "parsed": parsed, "candidates": n_candidates,
        "scoring_skipped": scoring_skipped,
    }


Stage = Callable[[TaskState], dict[str, Any]]
MODEL_STAGES: tuple[tuple[str, Stage], ...] = (
    ("augment", stage_augment),
    ("loo_eval", stage_loo_eval),
    ("ttt", stage_ttt),
    ("induction", stage_induction),
    ("verify", stage_verify),
    ("transduction", stage_transduction),
)


def stages_for(mode: str) -> tuple[tuple[str, Stage], ...]:
    skip = MODES[mode].skipped_stages
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
) -> dict[str, Any]:
    """Run every stage for one task; always returns a record with two attempts per test input."""
    from solve.select.vote import choose_attempts

    start = time.monotonic()
    deadline = task_deadline(start, deadline, cfg.run.task_timeout_s)
    s = TaskState(task, cfg, engine, sandbox, deadline, train_steps=train_steps)
    record: dict[str, Any] = {"task_id": task.id, "status": "ok", "error": None, "stages": {}}
    for name, fn in stages if stages is not None else stages_for(cfg.solve.mode):
        t0 = time.monotonic()
        if on_stage is not None:
            on_stage(name)
        try:
            if deadline is not None and t0 >= deadline:
                raise DeadlineReached(f"task deadline passed before stage '{name}'")
            info = fn(s)
            record["stages"][name] = {"seconds": round(time.monotonic() - t0, 3), **info}
        except Exception as e:  # recorded with stage and traceback; the vote below still runs
            record["stages"][name] = {"seconds": round(time.monotonic() - t0, 3), "failed": True}
            # Running out of time is the budget working, not a bug: keep it apart from failures.
            record["status"] = "deadline" if isinstance(e, DeadlineReached) else "failed"
            record["error"] = error_record(name, e)
            break
    t0 = time.monotonic()
    try:
        chosen = choose_attempts(task, s.program_results, s.extras, MODES[cfg.solve.mode].vote_order)
    except Exception as e:  # a vote bug must still leave placeholders in the submission
        chosen = placeholder_choice(task)
        record["status"], record["error"] = "failed", record["error"] or error_record("vote", e)
    record["stages"]["vote"] = {"seconds": round(time.monotonic() - t0, 3)}
    record["attempts"] = entry([[a.grid for a in picks] for picks in chosen])
    record["reasons"] = [[a.reason for a in picks] for picks in chosen]
    record["seconds"] = round(time.monotonic() - start, 3)
    record["score"] = score_record(task, record["attempts"])
    return record


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
