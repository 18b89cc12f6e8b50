"""Test-time search over programs, per task: rounds of hindsight training, revision and resampling.

One pass (induction, verify) samples programs once. Code-writing systems that work at test time
iterate (SOAR, arc25, ARC-Prometheus); `stage_search` does, for `solve.rounds` rounds within
`solve.search_fraction` of the time the task has left when it starts (all of it in a mode that runs no
transduction afterwards, `solve.mode: code`):
  1. stop once verified programs give one set of test outputs under min(2, `program_views`) views;
  2. hindsight: every distinct program that returned grids on all train inputs is relabelled as solving
     its own outputs (`solve.pipeline.hindsight`); up to `hindsight_cap` such samples of behaviours no
     earlier round trained on, and the task's grid leave-one-out samples, train the adapter `round_steps`
     more steps (no reset between rounds). In code mode a round with no new behaviour does not train:
     grid samples alone do not help programs;
  3. revision: the `refine_top_k` best parents (alternately: the most train pairs right, and the near
     misses, right shape on every pair with the most cells right even with no pair right; from any
     origin, the DSL search's included) are each shown with their outcome on every train pair and
     revised by the model; crossover prompts show two programs of one view that are right on different
     pairs (`ttt.revise`). A revision that is a copy of its parent (same normalized source) is dropped
     and drawn again, once, at a higher temperature;
  4. the adapter samples programs again under the induction views (a new seed per round);
  5. revisions and samples go through the same sandbox verification, before the search's deadline
     (generation stops VERIFY_RESERVE of the round's time early to leave room for it); a program seen
     before (same view, same normalized source) is not run again: it adds a copy to the earlier result.
     Progress is counted in new behaviours (what a program returns on every train and test input, in
     the task's frame), not in new texts.
What a round finds is appended to the task state (programs, results) as soon as it is verified, so a
deadline that cuts a round keeps everything the earlier rounds found. Test outputs are never trained on.

Not under data-parallel ranks (world > 1): programs are verified on rank 0 only, and every rank would
have to train on the same hindsight samples; the stage records that it was skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from augment.tasks import Task
from augment.transforms import Augmentation
from solve.pipeline.hindsight import hindsight_samples, relabel
from solve.pipeline.modes import MODES
from solve.pipeline.views import task_views
from solve.sandbox.programs import extract_program, normalize_source
from solve.sandbox.verify import Candidate, ProgramResult, verify

if TYPE_CHECKING:
    from ttt.prompts import Attempted
    from ttt.revise import RevisionRequest, RevisionText

ORIGINS = ("sample", "refine", "crossover")
SEED_STRIDE = 1000  # per-round seed offset for sampling, so no round repeats another's draws
VERIFY_RESERVE = 0.15  # share of a round's time left that generation leaves for verifying what it wrote
RETRY_TEMPERATURE_STEP = 0.4  # revisions that copied their parent are drawn again this much hotter
MAX_RETRY_TEMPERATURE = 1.5


class SearchState(Protocol):
    """What the search reads and fills in of a task's state (solve.pipeline.stages.TaskState)."""

    task: Task
    cfg: Any
    engine: Any
    sandbox: Any
    deadline: float | None
    samples: list[Any]
    sampled: list[tuple[Augmentation, str, int | None]]
    programs: list[tuple[Augmentation, str]]
    program_logprobs: dict[int, float]
    program_results: list[Any]
    search_rounds: list[dict[str, Any]]
    ranks: Any

    def share_deadline(self, fraction: float) -> float | None: ...
    def deadline_hit(self) -> bool: ...


@dataclass
class Search:
    """What the rounds of one task share beyond the task state."""

    views: dict[str, Augmentation]  # every program's view by name
    sample_views: list[Augmentation]  # the induction views, sampled again each round
    known: dict[tuple[str, str], ProgramResult]  # (view name, normalized source) -> its result
    revised: set[str] = field(default_factory=set)  # ids of programs already shown for refinement
    crossed: set[frozenset[str]] = field(default_factory=set)  # pairs already shown for crossover
    trained: set[tuple[Any, ...]] = field(default_factory=set)  # hindsight behaviours trained on (hindsight.behaviour_of)
    behaviours: set[tuple[Any, ...]] = field(default_factory=set)  # every program's behaviour in the task's frame (task_behaviour)
    code_only: bool = False  # no transduction follows: grid-only training rounds are wasted


@dataclass(frozen=True)
class Drafted:
    """A program text the model wrote this round, with where it came from."""

    view: Augmentation
    text: str
    origin: str  # one of ORIGINS
    parents: tuple[str, ...] = ()
    logprob: float | None = None


def settled(results: Sequence[ProgramResult], program_views: int) -> bool:
    """Verified programs exist, all give the same output for every test input, and they were written
    under min(2, program_views) distinct views: searching further would not change the answer."""
    verified = [r for r in results if r.verified]
    if not verified:
        return False
    outputs = {tuple(None if g is None else (g.shape, g.tobytes()) for g in r.test_outputs) for r in verified}
    if len(outputs) != 1 or None in next(iter(outputs)):
        return False
    return len({r.view_name for r in verified}) >= min(2, max(1, program_views))


def task_behaviour(r: ProgramResult, view: Augmentation) -> tuple[Any, ...]:
    """What a program returns on every train input and test input, in the task's frame and pair order:
    programs written for different views that compute the same thing have the same behaviour."""
    back: list[np.ndarray | None] = [None] * len(r.train_outputs)
    order = view.order if view.order is not None else range(len(r.train_outputs))
    for i, o in zip(order, r.train_outputs):  # view pair i is the task's pair order[i]
        back[i] = None if o is None else view.invert_grid(o)
    return tuple(None if g is None else (g.shape, g.tobytes()) for g in [*back, *r.test_outputs])


def late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def time_to(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def stage_search(s: SearchState) -> dict[str, Any]:
    """Run the search rounds (see the module doc). The record: `rounds_run`, `stopped_by` ("rounds",
    "settled" or "deadline"), `budget` ("task" or "search_fraction"), the task's distinct and verified
    programs after the search, and per round its counts: texts `sampled` / `refined` / `crossover`,
    `copies_rejected` (revisions equal to their parent) and `resampled` (drawn again for them), programs
    `parsed`, `new` (run for the first time), `new_behaviours` (and by origin), `repeats`, `unverified`
    (the search's deadline came first), `verified`, `partial`, `verified_by_origin`, `train_accuracy` of
    the new ones, `hindsight_samples` (new behaviours only), `train` (steps, first and last loss,
    samples) or `train_skipped`, and `cut` (the search's time ran out during the round)."""
    c = s.cfg.solve
    if s.ranks is not None and s.ranks.world > 1:
        return {"skipped": "data-parallel ranks"}
    code_only = "transduction" in MODES[c.mode].skipped_stages
    # search_fraction keeps time for transduction; with none after the search, the task's time is the search's.
    deadline = s.deadline if code_only else s.share_deadline(c.search_fraction)
    sample_views = task_views(s.task, s.cfg, c.program_views)
    views = {v.name: v for v in [Augmentation(), *sample_views, *(v for v, _ in s.programs)]}
    search = Search(
        views, sample_views, {(r.view_name, normalize_source(r.source)): r for r in s.program_results},
        behaviours={task_behaviour(r, views[r.view_name]) for r in s.program_results}, code_only=code_only,
    )
    rounds, stopped_by = [], "rounds"
    for r in range(1, c.rounds + 1):
        if settled(s.program_results, c.program_views):
            stopped_by = "settled"
            break
        if late(deadline):
            stopped_by = "deadline"
            break
        info, extra = run_round(s, search, r, deadline)
        rounds.append(info)
        s.search_rounds.append(info | extra)
        if info["cut"]:
            stopped_by = "deadline"
            break
    return {
        "rounds_run": len(rounds), "stopped_by": stopped_by, "budget": "task" if code_only else "search_fraction",
        "programs": len(s.program_results), "verified": sum(r.verified for r in s.program_results), "rounds": rounds,
        "deadline_hit": s.deadline_hit(),
    }


def run_round(s: SearchState, search: Search, r: int, deadline: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round: train on hindsight, revise, resample, verify. Returns (the record's counts, what only
    the artifacts keep: the round's program ids with origins and parents, the training losses)."""
    t0 = time.monotonic()
    info, losses = train_round(s, search, r, deadline)
    # Generation stops early enough that what it writes can still be verified before the deadline.
    written_by = None if deadline is None else deadline - VERIFY_RESERVE * max(0.0, deadline - time.monotonic())
    drafts: list[Drafted] = []
    requests = revision_requests(s.task, s.program_results, search, s.cfg.solve.refine_top_k)
    info["refine_prompts"] = sum(q.kind == "refine" for q in requests)
    info["crossover_prompts"] = sum(q.kind == "crossover" for q in requests)
    info["copies_rejected"] = info["resampled"] = 0
    if requests and not late(written_by):
        revised, rejected, resampled = revise(s, requests, r, written_by)
        drafts += revised
        info["copies_rejected"], info["resampled"] = rejected, resampled
    if not late(written_by):
        drafts += resample(s, search.sample_views, r, written_by)
    counts, programs = add_and_verify(s, search, drafts, deadline)
    info |= counts
    info["cut"] = late(deadline)
    info["seconds"] = round(time.monotonic() - t0, 3)
    return info, {"programs": programs, "losses": losses}


def train_round(s: SearchState, search: Search, r: int, deadline: float | None) -> tuple[dict[str, Any], list[float]]:
    """Hindsight samples of the behaviours no round trained on yet, and `round_steps` more adapter steps on
    them and the task's grid leave-one-out samples (which hold train pairs only). In code mode, a round
    with no new hindsight sample does not train at all."""
    from ttt.train import adapt

    c, tc = s.cfg.solve, s.cfg.train
    relabelled = relabel(s.task, s.program_results, search.views, c.hindsight_cap, search.trained)
    encoded, dropped = hindsight_samples(s.engine.tokenizer, relabelled, tc.max_seq_len)
    info: dict[str, Any] = {"round": r, "hindsight_samples": len(encoded), "hindsight_dropped": dropped, "train": None}
    if c.round_steps == 0 or late(deadline):
        return info, []
    if not encoded and search.code_only:
        info["train_skipped"] = "no new hindsight samples"
        return info, []
    cfg = tc.model_copy(update={"steps": c.round_steps, "seed": tc.seed + r, "warmup_steps": min(tc.warmup_steps, c.round_steps // 4)})
    result = adapt(s.engine.model, s.engine.tokenizer, s.samples, cfg, deadline, runner=s.engine.runner, encoded=encoded)
    search.trained.update(h.behaviour for h in relabelled)
    losses = result.losses
    info["train"] = {
        "steps": result.steps, "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "stopped_by": result.stopped_by, "samples": result.samples, "seconds": round(result.seconds, 3),
    }
    return info, losses


def partial_programs(results: Sequence[ProgramResult]) -> list[ProgramResult]:
    """Programs that are not verified (lookup tables left out) but returned at least one train grid, best
    first (train accuracy, then cells right, then shortest), one per behaviour (view and train outputs)."""
    ranked = sorted(
        (r for r in results if not r.verified and r.lookup is None and any(o is not None for o in r.train_outputs)),
        key=lambda r: (-r.train_correct, -r.train_cells, len(r.source)),
    )
    seen, out = set(), []
    for r in ranked:
        behaviour = (r.view_name, *(None if o is None else (o.shape, o.tobytes()) for o in r.train_outputs))
        if behaviour not in seen:
            seen.add(behaviour)
            out.append(r)
    return out


def right_shape(r: ProgramResult, view_task: Task) -> bool:
    """The program returned a grid of the expected shape on every train pair."""
    return len(r.train_outputs) == len(view_task.train) and all(
        o is not None and o.shape == p.output.shape for o, p in zip(r.train_outputs, view_task.train)
    )


def near_misses(partial: Sequence[ProgramResult], view_tasks: dict[str, Task]) -> list[ProgramResult]:
    """The programs of the right shape on every pair, most cells right first (then shortest): a program
    that is close everywhere may be one fix from right even with no pair exactly right."""
    close = [r for r in partial if right_shape(r, view_tasks[r.view_name])]
    return sorted(close, key=lambda r: (-r.train_cells, len(r.source)))


def parents(partial: Sequence[ProgramResult], near: Sequence[ProgramResult]) -> list[ProgramResult]:
    """Refinement parents in order: alternately the next best by pairs right and the next near miss."""
    out, seen = [], set()
    for k in range(max(len(partial), len(near))):
        for r in (partial[k] if k < len(partial) else None, near[k] if k < len(near) else None):
            if r is not None and r.program_id not in seen:
                seen.add(r.program_id)
                out.append(r)
    return out


def right_pairs(r: ProgramResult, view_task: Task) -> frozenset[int]:
    return frozenset(i for i, (o, p) in enumerate(zip(r.train_outputs, view_task.train)) if o is not None and np.array_equal(o, p.output))


def attempted(r: ProgramResult) -> Attempted:
    """How a revision prompt shows a program the sandbox ran: its source and what it returned (or its error) on
    each train pair of its view. The one conversion, for test-time search and pretraining's repair samples."""
    from ttt.prompts import Attempted

    return Attempted(r.source, tuple(r.train_outputs), tuple(r.train_errors))


def revision_requests(task: Task, results: Sequence[ProgramResult], search: Search, k: int) -> list[RevisionRequest]:
    """Up to `k` refinement requests (`parents` not revised before) and up to max(1, k // 2) crossover
    requests (two programs of one view, each right on a pair the other gets wrong; the pair right on
    most pairs together first), none shown twice across rounds."""
    from ttt.revise import RevisionRequest

    if k <= 0:
        return []
    partial = partial_programs(results)
    view_tasks = {name: search.views[name].apply_task(task) for name in {r.view_name for r in partial}}

    def request(shown: Sequence[ProgramResult]) -> RevisionRequest:
        vt = view_tasks[shown[0].view_name]
        attempts = tuple(attempted(p) for p in shown)
        return RevisionRequest(search.views[shown[0].view_name], vt.train, attempts, tuple(p.program_id for p in shown))

    refine = [p for p in parents(partial, near_misses(partial, view_tasks)) if p.program_id not in search.revised][:k]
    search.revised.update(p.program_id for p in refine)
    right = {p.program_id: right_pairs(p, view_tasks[p.view_name]) for p in partial}
    pairs = []
    for i, a in enumerate(partial):
        for b in partial[i + 1 :]:
            ra, rb = right[a.program_id], right[b.program_id]
            if a.view_name == b.view_name and ra - rb and rb - ra and frozenset((a.program_id, b.program_id)) not in search.crossed:
                pairs.append((-len(ra | rb), -(a.train_cells + b.train_cells), i, a, b))
    crossover = [(a, b) for *_, a, b in sorted(pairs, key=lambda x: x[:3])][: max(1, k // 2)]
    search.crossed.update(frozenset((a.program_id, b.program_id)) for a, b in crossover)
    return [request([p]) for p in refine] + [request([a, b]) for a, b in crossover]


def copies_of_parents(requests: Sequence[RevisionRequest], texts: Sequence[RevisionText]) -> tuple[list[RevisionText], list[int]]:
    """(the texts that are not a copy of a program their prompt showed, copies per request). A copy has
    the normalized source of a shown program: the model repeated the answer-formatted program above it."""
    shown = {id(q): {normalize_source(a.source) for a in q.attempts} for q in requests}
    position = {id(q): k for k, q in enumerate(requests)}
    kept, copies = [], [0] * len(requests)
    for t in texts:
        source = extract_program(t.text).source
        if source is not None and normalize_source(source) in shown[id(t.request)]:
            copies[position[id(t.request)]] += 1
        else:
            kept.append(t)
    return kept, copies


def revise(s: SearchState, requests: Sequence[RevisionRequest], r: int, deadline: float | None) -> tuple[list[Drafted], int, int]:
    """The round's revisions without copies of their parents: those are drawn again once, as many per
    request as it copied, RETRY_TEMPERATURE_STEP hotter. Returns (drafts, copies rejected, texts resampled)."""
    from ttt.revise import sample_revisions

    c = s.cfg.solve
    seed = s.cfg.run.seed + SEED_STRIDE * r + SEED_STRIDE // 2
    common = {"ranks": s.ranks, "max_seq_len": s.cfg.train.max_seq_len}
    texts = sample_revisions(s.engine.model, s.engine.tokenizer, requests, c.programs_per_view, c, seed, time_to(deadline), **common)
    kept, copies = copies_of_parents(requests, texts)
    rejected, resampled = sum(copies), 0
    if rejected and not late(deadline):
        hotter = c.model_copy(update={"temperature": max(c.temperature, min(MAX_RETRY_TEMPERATURE, c.temperature + RETRY_TEMPERATURE_STEP))})
        again = sample_revisions(s.engine.model, s.engine.tokenizer, requests, copies, hotter, seed + 1, time_to(deadline), **common)
        more, copied = copies_of_parents(requests, again)
        kept += more
        rejected, resampled = rejected + sum(copied), len(again)
    return [Drafted(t.request.view, t.text, t.request.kind, t.request.parents, t.logprob) for t in kept], rejected, resampled


def resample(s: SearchState, views: Sequence[Augmentation], r: int, deadline: float | None) -> list[Drafted]:
    from ttt.decoding.sample import sample_programs

    c = s.cfg.solve
    texts = sample_programs(
        s.engine.model, s.engine.tokenizer, s.task, list(views), c.programs_per_view, c, s.cfg.run.seed + SEED_STRIDE * r,
        time_to(deadline), s.ranks, max_seq_len=s.cfg.train.max_seq_len,
    )
    return [Drafted(t.view, t.text, "sample", (), t.logprob) for t in texts]


def add_and_verify(
    s: SearchState, search: Search, drafts: Sequence[Drafted], deadline: float | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Add the round's texts to the task state (ids continue p0, p1, ...) and verify the programs not
    seen before, unless the search's deadline has passed. Returns the round's counts and, per program,
    its id, origin and parents (for the artifacts)."""
    candidates, programs = [], []
    for d in drafts:
        source = extract_program(d.text).source
        index = None if source is None else len(s.programs)
        s.sampled.append((d.view, d.text, index))
        if source is None:
            continue
        s.programs.append((d.view, source))
        if d.logprob is not None:
            s.program_logprobs[index] = d.logprob
        candidates.append(Candidate(f"p{index}", source, d.view, d.logprob, d.origin))
        programs.append({"id": f"p{index}", "origin": d.origin, "parents": list(d.parents)})
    fresh, repeats = verify_new(s, search, candidates) if candidates and not late(deadline) else ([], 0)
    origin = {p["id"]: p["origin"] for p in programs}
    new_behaviours = {o: 0 for o in ORIGINS}
    for r in fresh:
        b = task_behaviour(r, search.views[r.view_name])
        if b not in search.behaviours:
            search.behaviours.add(b)
            new_behaviours[origin[r.program_id]] += 1
    made = {o: sum(d.origin == o for d in drafts) for o in ORIGINS}
    counts: dict[str, Any] = {
        "sampled": made["sample"], "refined": made["refine"], "crossover": made["crossover"],
        "parsed": len(candidates), "new": len(fresh), "repeats": repeats, "unverified": len(candidates) - len(fresh) - repeats,
        "new_behaviours": sum(new_behaviours.values()), "new_behaviours_by_origin": new_behaviours,
        "verified": sum(r.verified for r in fresh), "partial": sum(r.train_correct > 0 and not r.verified for r in fresh),
        "verified_by_origin": {o: sum(r.verified and origin[r.program_id] == o for r in fresh) for o in ORIGINS},
        "train_accuracy": {
            "best": round(max((r.train_accuracy for r in fresh), default=0.0), 4),
            "mean": round(float(np.mean([r.train_accuracy for r in fresh])), 4) if fresh else None,
        },
        "verified_total": sum(r.verified for r in s.program_results),
    }
    return counts, programs


def verify_new(s: SearchState, search: Search, candidates: Sequence[Candidate]) -> tuple[list[ProgramResult], int]:
    """Run the candidates not seen before (in any round) and append their results to the task state; a
    candidate seen before, or twice now, becomes a copy of the other's result. Returns (new results,
    candidates that were copies)."""
    fresh = []
    for c in candidates:
        old = search.known.get((c.view.name, normalize_source(c.source)))
        if old is None:
            fresh.append(c)
            continue
        old.copies += 1
        old.duplicate_ids = (*old.duplicate_ids, c.program_id)
        if c.logprob is not None:
            old.logprob = c.logprob if old.logprob is None else max(old.logprob, c.logprob)
    results = verify(s.task, fresh, s.sandbox) if fresh else []
    for r in results:
        s.program_results.append(r)
        search.known[(r.view_name, normalize_source(r.source))] = r
    return results, len(candidates) - len(results)
