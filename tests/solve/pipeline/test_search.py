"""Test-time search (solve.pipeline.search): hindsight samples verify by construction, no round trains on a
test output, a deadline mid-round keeps what earlier rounds found, revision prompts show the right
differences, revisions go through the sandbox, and `solve.rounds: 0` is the single pass it always was.

The tiny random model writes no programs, so the samplers are replaced by scripts of known programs;
training, the sandbox, verification and the vote are real."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from rich.console import Console

from augment.gridtext import grid_to_text
from augment.tasks import Pair, Task
from augment.transforms import Augmentation
from solve.pipeline.artifacts import artifacts_path
from solve.pipeline.hindsight import hindsight_samples, relabel
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import load_config
from solve.pipeline.search import Search, revision_requests, settled, stage_search
from solve.pipeline.stages import (
    Engine,
    solve_task,
    stage_augment,
    stage_induction,
    stage_transduction,
    stage_ttt,
    stage_verify,
    stages_for,
)
from solve.placement.dispatch import run_tasks
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from solve.sandbox.verify import Candidate, verify
from ttt.decoding.sample import ProgramText
from ttt.lora import wrap_lora
from ttt.prompts import CROSSOVER_NOTE, REVISE_NOTE, outcome_text, revision_text

FAST = [
    "model.source=random:tiny", "augment.n_samples=4", "train.steps=2", "train.max_seq_len=1024",
    "solve.program_views=1", "solve.programs_per_view=2", "solve.program_max_new_tokens=24",
    "solve.grid_views=2", "solve.score_views=2", "sandbox.workers=1",
]

# Recolor 1 -> 2 on 3x4 grids: no output is a rotation or reflection of an input, so a test output's text
# can only reach training data by a leak (a flip task would fail that check on its own test input).
rng = np.random.default_rng(5)
GRIDS = [np.concatenate([[[1, 1, 0, 3]], rng.integers(0, 4, (2, 4))]).astype(np.uint8) for _ in range(4)]


def recolor(x):
    return np.where(x == 1, 2, x).astype(np.uint8)


TASK = Task("recolor", tuple(Pair(x, recolor(x)) for x in GRIDS[:3]), (GRIDS[3],), (recolor(GRIDS[3]),))
FIRST = GRIDS[0].tolist()
RECOLOR = "def transform(grid):\n    return [[2 if v == 1 else v for v in row] for row in grid]\n"
# Right on pairs 2 and 3 and on the test input (its test output is the truth), wrong on pair 1.
PARTIAL = f"def transform(grid):\n    if grid == {FIRST}:\n        return grid\n    return [[2 if v == 1 else v for v in row] for row in grid]\n"
# Right on pair 1 only.
ONLY_FIRST = f"def transform(grid):\n    if grid == {FIRST}:\n        return [[2 if v == 1 else v for v in row] for row in grid]\n    return [row[::-1] for row in grid]\n"
BROKEN = "def transform(grid):\n    return grid[99]\n"


def fenced(source: str) -> str:
    return f"```python\n{source}```"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=1, timeout_s=1.0)) as sb:
        yield sb


@pytest.fixture
def engine(tiny, tokenizer):
    return Engine(wrap_lora(tiny, load_config("configs/smoke.yaml", FAST).lora), tokenizer)


def config(*more: str):
    return load_config("configs/smoke.yaml", FAST + list(more))


def script_sampler(monkeypatch, script):
    """Replace program sampling (induction and every round) by `script`: call i returns script[i]'s
    sources (the last entry repeats) under each view, or what script[i](views, max_time) returns."""
    calls = []

    def sample_programs(model, tokenizer, task, views, per_view, cfg, seed, max_time=None, ranks=None, max_seq_len=None):
        calls.append({"seed": seed, "max_time": max_time})
        step = script[min(len(calls), len(script)) - 1]
        if callable(step):
            return step(views, max_time)
        return [ProgramText(v, fenced(src)) for v in views for src in step]

    monkeypatch.setattr("ttt.decoding.sample.sample_programs", sample_programs)
    return calls


def script_revisions(monkeypatch, refine_source: str | None, crossover_source: str | None = None):
    """Replace revision sampling: each refinement request gets `refine_source`, each crossover one
    `crossover_source` (None: text with no program). Returns the requests seen."""
    from ttt.revise import RevisionText

    seen = []

    def sample_revisions(model, tokenizer, requests, per_request, cfg, seed, max_time=None, ranks=None, max_seq_len=None):
        seen.extend(requests)
        out = []
        for q in requests:
            src = refine_source if q.kind == "refine" else crossover_source
            out.append(RevisionText(q, fenced(src) if src else "no idea", False, None))
        return out

    monkeypatch.setattr("ttt.revise.sample_revisions", sample_revisions)
    return seen


SEARCH_STAGES = [("augment", stage_augment), ("induction", stage_induction), ("verify", stage_verify), ("search", stage_search)]


# --- hindsight ----------------------------------------------------------------------------------------


def test_relabelled_programs_verify_on_their_relabelled_tasks(sandbox, tokenizer):
    """Every program that returned grids on all train inputs (any view) verifies on its relabelled task in
    the real sandbox; a program failing on one input is left out; equal behaviour gives one sample;
    relabelled tasks hold the view's test inputs and no test output."""
    rot = Augmentation(dihedral=1)
    shifted = "def transform(grid):\n    return [row[1:] + row[:1] for row in grid]\n"
    same_as_shifted = "def transform(grid):\n    out = [list(row[1:]) + [row[0]] for row in grid]\n    return out\n"
    cands = [Candidate("p0", PARTIAL), Candidate("p1", ONLY_FIRST), Candidate("p2", BROKEN), Candidate("p3", shifted),
             Candidate("p4", same_as_shifted), Candidate("p5", RECOLOR), Candidate("p6", shifted, rot)]
    results = verify(TASK, cands, sandbox)
    views = {"identity": Augmentation(), rot.name: rot}
    relabelled = relabel(TASK, results, views, cap=10)
    ids = [h.program_id for h in relabelled]
    assert ids[:3] == ["p5", "p0", "p1"] and sorted(ids[3:]) == ["p3", "p6"], "best first; p2 failed; p4 behaves as p3"
    for h in relabelled:
        assert h.task.test_outputs is None
        vt = h.view.apply_task(TASK)
        assert all(np.array_equal(a, b) for a, b in zip(h.task.test_inputs, vt.test_inputs))
        assert all(np.array_equal(p.input, q.input) for p, q in zip(h.task.train, vt.train))
        (check,) = verify(h.task, [Candidate(h.program_id, h.source)], sandbox)
        # Right on every relabelled pair (PARTIAL's literal input is its relabelled pair 1 output: a lookup there).
        assert check.train_correct == check.train_total, (h.program_id, check)
    assert [h.program_id for h in relabel(TASK, results, views, cap=2)] == ["p5", "p0"]
    encoded, dropped = hindsight_samples(tokenizer, relabelled, 1024)
    assert len(encoded) == len(relabelled) and dropped == 0
    text = tokenizer.decode(encoded[1].input_ids)
    assert PARTIAL.strip() in text and grid_to_text(GRIDS[0]) in text  # pair 1 relabelled: its input -> itself
    assert "test in\n" + grid_to_text(GRIDS[3]) in text


# --- the rounds ----------------------------------------------------------------------------------------


def test_no_round_ever_trains_on_a_test_output(monkeypatch, engine, sandbox):
    """Every training call (the first adaptation and each round's) sees no test output in any frame,
    although a program it learns from (PARTIAL) computes the true test output."""
    from ttt import train

    real, trained = train.adapt, []

    def spy(model, tokenizer, samples, cfg, deadline=None, runner=None, encoded=()):
        trained.append((list(samples), list(encoded)))
        return real(model, tokenizer, samples, cfg, deadline, runner, encoded=encoded)

    monkeypatch.setattr("ttt.train.adapt", spy)
    script_sampler(monkeypatch, [[PARTIAL, ONLY_FIRST], [BROKEN]])
    script_revisions(monkeypatch, PARTIAL.replace("return grid\n", "return grid[::-1]\n"))
    cfg = config("solve.rounds=2", "solve.round_steps=1", "solve.refine_top_k=1")
    stages = [("augment", stage_augment), ("ttt", stage_ttt), *SEARCH_STAGES[1:]]
    rec = solve_task(TASK, cfg, engine, sandbox, stages=stages)
    assert rec["status"] == "ok", rec["error"]
    search = rec["stages"]["search"]
    assert search["rounds_run"] == 2 and [r["hindsight_samples"] for r in search["rounds"]] == [2, 1], "round 2: the new revision only"
    assert len(trained) == 3 and all(enc for _, enc in trained[1:])

    truth = TASK.test_outputs[0]
    frames = [Augmentation(dihedral=d).apply_grid(truth) for d in range(8)]
    forbidden = {grid_to_text(f) for f in frames}
    tok = engine.tokenizer
    texts = [tok.decode(e.input_ids) for _, enc in trained for e in enc]
    assert any(PARTIAL.strip() in t for t in texts), "the hindsight samples were trained on"
    for t in texts:
        assert not any(f in t for f in forbidden)
    for samples, _ in trained:
        for s in samples:
            grids = [g for p in s.context for g in (p.input, p.output)] + [s.query, s.target]
            assert not any(g.shape == f.shape and np.array_equal(g, f) for g in grids for f in frames)
    (r,) = [r for r in search["rounds"] if r["round"] == 1]
    assert r["train"]["samples"]["pre_encoded"] == r["hindsight_samples"] and r["train"]["steps"] == 1


def test_a_deadline_mid_round_keeps_what_earlier_rounds_found(monkeypatch, engine, sandbox):
    """Round 1 finds a partial program; round 2's sampling runs into the task's deadline. The task ends
    'deadline' and its vote still uses round 1's program (whose test output is right)."""

    deadline = time.monotonic() + 15

    def until_the_deadline(views, max_time):
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)  # generation that runs past the task's deadline
        return [ProgramText(v, fenced(RECOLOR)) for v in views]

    calls = script_sampler(monkeypatch, [[BROKEN], [PARTIAL], until_the_deadline])
    cfg = config("solve.rounds=3", "solve.round_steps=1", "solve.search_fraction=1.0")
    stages = [*SEARCH_STAGES, ("transduction", stage_transduction)]
    rec = solve_task(TASK, cfg, engine, sandbox, deadline=deadline, stages=stages)
    assert len(calls) == 3
    assert rec["status"] == "deadline" and rec["error"]["stage"] == "transduction"
    search = rec["stages"]["search"]
    assert search["stopped_by"] == "deadline" and search["rounds_run"] == 2
    first, cut = search["rounds"]
    assert (first["partial"], first["cut"]) == (1, False)
    assert cut["cut"] and cut["sampled"] == 1 and cut["new"] == 0 and cut["unverified"] == 1, "never run past the deadline"
    reason = rec["reasons"][0][0]
    assert reason["tier"] == "partial" and reason["programs"] == ["p1"]
    assert rec["attempts"][0]["attempt_1"] == TASK.test_outputs[0].tolist() and rec["score"] == 1.0


def test_revisions_are_verified_and_recorded(monkeypatch, engine, sandbox, tmp_path):
    """A refinement that fixes a partial program verifies in the sandbox and wins the vote; the round
    counts it by origin, the artifacts name its parents, and the search stops once settled."""
    script_sampler(monkeypatch, [[PARTIAL, ONLY_FIRST], [BROKEN]])
    seen = script_revisions(monkeypatch, RECOLOR, None)
    cfg = config("solve.rounds=3", "solve.round_steps=1", "solve.refine_top_k=2")
    rec = solve_task(TASK, cfg, engine, sandbox, stages=SEARCH_STAGES, artifacts_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    search = rec["stages"]["search"]
    assert (search["rounds_run"], search["stopped_by"]) == (1, "settled")
    (r,) = search["rounds"]
    assert [q.kind for q in seen] == ["refine", "refine", "crossover"] and [q.parents for q in seen][:2] == [("p0",), ("p1",)]
    assert (r["refine_prompts"], r["crossover_prompts"], r["refined"], r["crossover"], r["sampled"]) == (2, 1, 2, 1, 1)
    assert r["parsed"] == 3 and r["new"] == 2 and r["repeats"] == 1, "the second fix is the first one again"
    assert r["verified_by_origin"] == {"sample": 0, "refine": 1, "crossover": 0} and r["verified_total"] == 1
    assert rec["reasons"][0][0]["tier"] == "verified" and rec["score"] == 1.0

    data = json.loads(artifacts_path(tmp_path, TASK.id).read_text())
    (art,) = data["rounds"]
    assert art["programs"][0] == {"id": "p2", "origin": "refine", "parents": ["p0"]}
    assert len(art["losses"]) == 1 and art["train"]["steps"] == 1
    assert len(data["programs"]) == 2 + 3 + 1, "every text, sampled or revised, is listed"
    assert {p["id"] for p in data["programs"] if p.get("verified")} == {"p2", "p3"}


def test_revision_requests_show_the_differences(sandbox):
    """The best partial programs go back with their real outputs: expected and got on a wrong pair (and
    how many cells differ), 'right' elsewhere, errors named; crossover pairs programs right on different
    pairs; nothing is shown twice."""
    results = verify(TASK, [Candidate("p0", ONLY_FIRST), Candidate("p1", PARTIAL), Candidate("p2", BROKEN)], sandbox)
    search = Search({"identity": Augmentation()}, [Augmentation()], {})
    requests = revision_requests(TASK, results, search, 1)
    assert [(q.kind, q.parents) for q in requests] == [("refine", ("p1",)), ("crossover", ("p1", "p0"))], "the better program first"
    refine, cross = requests
    text = revision_text(refine.context, refine.attempts)
    assert "pair 1: " + outcome_text(GRIDS[0], None, recolor(GRIDS[0])) in text and "cells differ)\ngot, . where right\n" in text
    assert "pair 2: right" in text and "pair 3: right" in text and text.endswith(REVISE_NOTE)
    assert "```python\n" + PARTIAL.strip() + "\n```" in text and "test in" not in text

    text = revision_text(cross.context, cross.attempts)
    a, b = text.split("program B\n")
    assert "program A\n" in a and "pair 1: wrong" in a and "pair 2: right" in a and "pair 1: right" in b and "pair 2: wrong" in b
    assert text.endswith(CROSSOVER_NOTE)
    assert [q.parents for q in revision_requests(TASK, results, search, 2)] == [("p0",)], "p2 returned nothing; p1 and the pair were shown"


# Right shape everywhere, no pair right, most cells right: recolours 1 -> 2 except the first cell.
NEAR = "def transform(grid):\n    out = [[2 if v == 1 else v for v in row] for row in grid]\n    out[0][0] = 5\n    return out\n"
# Right on pair 1 only, and a 1-row grid elsewhere (wrong shape): few cells right.
ONE_PAIR = f"def transform(grid):\n    if grid == {FIRST}:\n        return [[2 if v == 1 else v for v in row] for row in grid]\n    return grid[:1]\n"


def test_near_misses_are_refinement_parents(sandbox):
    """The defect: parents were ranked by pairs right first, so a program of the right shape with most
    cells right but no pair exactly right (here from the DSL search) never got revised while programs
    right on one pair and far off elsewhere did."""
    results = verify(TASK, [Candidate("p0", ONE_PAIR), Candidate("p1", ONLY_FIRST), Candidate("dsl0", NEAR, origin="dsl")], sandbox)
    near = results[2]
    assert near.train_correct == 0 and near.train_cells > max(r.train_cells for r in results[:2])
    search = Search({"identity": Augmentation()}, [Augmentation()], {})
    requests = revision_requests(TASK, results, search, 2)
    assert [q.parents for q in requests if q.kind == "refine"] == [("p1",), ("dsl0",)]


def test_lookup_tables_are_not_refinement_parents(sandbox):
    table = "def transform(grid):\n" + "".join(f"    if grid == {p.input.tolist()}:\n        return {p.output.tolist()}\n" for p in TASK.train)
    table += "    return grid\n"
    results = verify(TASK, [Candidate("p0", table), Candidate("p1", ONLY_FIRST)], sandbox)
    assert results[0].train_correct == 3 and results[0].lookup and not results[0].verified
    search = Search({"identity": Augmentation()}, [Augmentation()], {})
    assert [q.parents for q in revision_requests(TASK, results, search, 2)] == [("p1",)]
    assert [h.program_id for h in relabel(TASK, results, {"identity": Augmentation()}, 5)] == ["p1"], "nor hindsight samples"


def test_copies_of_the_parent_are_rejected_and_drawn_again_hotter(monkeypatch, engine, sandbox):
    """The defect: a revision that repeated its parent (here renamed) counted as the round's work. It is
    dropped, drawn again at a higher temperature, and only new behaviours count as progress."""
    from ttt.revise import RevisionText

    script_sampler(monkeypatch, [[PARTIAL], [BROKEN]])
    renamed = PARTIAL.replace("grid", "g").replace("row", "r")
    calls = []

    def sample_revisions(model, tokenizer, requests, per_request, cfg, seed, max_time=None, ranks=None, max_seq_len=None):
        counts = [per_request] * len(requests) if isinstance(per_request, int) else list(per_request)
        calls.append((counts, cfg.temperature))
        src = renamed if len(calls) == 1 else RECOLOR
        return [RevisionText(q, fenced(src), False, None) for q, n in zip(requests, counts) for _ in range(n)]

    monkeypatch.setattr("ttt.revise.sample_revisions", sample_revisions)
    cfg = config("solve.rounds=1", "solve.round_steps=0", "solve.refine_top_k=1", "solve.temperature=0.7")
    rec = solve_task(TASK, cfg, engine, sandbox, stages=SEARCH_STAGES)
    (r,) = rec["stages"]["search"]["rounds"]
    assert calls == [([2], 0.7), ([2], pytest.approx(1.1))], "both copies drawn again, hotter"
    assert (r["copies_rejected"], r["resampled"], r["refined"]) == (2, 2, 2)
    assert r["verified_by_origin"]["refine"] == 1 and r["new_behaviours_by_origin"] == {"sample": 1, "refine": 1, "crossover": 0}
    assert rec["reasons"][0][0]["tier"] == "verified"


def test_hindsight_trains_new_behaviours_only_and_code_mode_skips_grid_only_rounds(monkeypatch, engine, sandbox):
    """The defect: every round retrained the same top programs, identity and constant programs included,
    and a code-mode round with nothing new still trained on grid samples alone."""
    from ttt import train

    real, trained = train.adapt, []

    def spy(model, tokenizer, samples, cfg, deadline=None, runner=None, encoded=()):
        trained.append([tokenizer.decode(e.input_ids) for e in encoded])
        return real(model, tokenizer, samples, cfg, deadline, runner, encoded=encoded)

    monkeypatch.setattr("ttt.train.adapt", spy)
    identity = "def transform(grid):\n    return grid\n"
    constant = "def transform(grid):\n    return [[3] * 4 for _ in range(3)]\n"
    script_sampler(monkeypatch, [[PARTIAL, identity, constant], [ONLY_FIRST], [PARTIAL]])
    cfg = config("solve.rounds=3", "solve.round_steps=1", "solve.mode=code")
    rec = solve_task(TASK, cfg, engine, sandbox, stages=SEARCH_STAGES)
    rounds = rec["stages"]["search"]["rounds"]
    assert [r["hindsight_samples"] for r in rounds] == [1, 1, 0], "PARTIAL, then ONLY_FIRST (new in round 1), then nothing new"
    assert len(trained) == 2 and "train_skipped" in rounds[2] and rounds[2]["train"] is None
    assert PARTIAL.strip() in trained[0][0] and ONLY_FIRST.strip() in trained[1][0]
    assert [r["new_behaviours"] for r in rounds] == [1, 0, 0]


def test_code_mode_searches_with_the_task_budget(monkeypatch, engine, sandbox):
    """The defect: code mode stopped at search_fraction of the time left although no transduction follows."""
    calls = script_sampler(monkeypatch, [[BROKEN]])
    cfg = config("solve.rounds=1", "solve.round_steps=0", "solve.mode=code", "solve.search_fraction=0.5")
    rec = solve_task(TASK, cfg, engine, sandbox, deadline=time.monotonic() + 20, stages=SEARCH_STAGES)
    assert rec["stages"]["search"]["budget"] == "task"
    # search_fraction would cap it at 0.5 x (at most 20 s); it gets (1 - VERIFY_RESERVE) of the task's time left.
    assert calls[1]["max_time"] > 0.5 * 20 + 0.5


def test_programs_are_verified_within_the_search_deadline(monkeypatch, engine, sandbox):
    """The defect: a round verified until the task's deadline, eating the time search_fraction keeps for
    transduction. What is sampled after the search's deadline is recorded, not run."""
    from solve.pipeline.search import VERIFY_RESERVE

    def past_the_search_deadline(views, max_time):
        time.sleep(max_time / (1 - VERIFY_RESERVE) + 0.1)
        return [ProgramText(v, fenced(RECOLOR)) for v in views]

    script_sampler(monkeypatch, [[BROKEN], past_the_search_deadline])
    cfg = config("solve.rounds=2", "solve.round_steps=0", "solve.search_fraction=0.2")
    rec = solve_task(TASK, cfg, engine, sandbox, deadline=time.monotonic() + 10, stages=SEARCH_STAGES)
    search = rec["stages"]["search"]
    assert rec["status"] == "ok" and search["budget"] == "search_fraction" and search["stopped_by"] == "deadline"
    (r,) = search["rounds"]
    assert (r["parsed"], r["new"], r["unverified"], r["verified_total"]) == (1, 0, 1, 0)


def test_search_does_not_import_the_stages():
    """The import cycle search <-> stages is gone: no import of solve.pipeline.stages in search.py at all."""
    import ast
    import inspect

    import solve.pipeline.search as search

    tree = ast.parse(inspect.getsource(search))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "solve.pipeline.stages" not in imported and "solve.pipeline.views" in imported
    from solve.pipeline import stages, views

    assert stages.task_views is views.task_views


def test_settled_needs_one_answer_under_enough_views(sandbox):
    rot = Augmentation(dihedral=1)
    one = verify(TASK, [Candidate("a", RECOLOR)], sandbox)
    two = verify(TASK, [Candidate("a", RECOLOR), Candidate("b", RECOLOR, rot)], sandbox)
    assert settled(one, 1) and not settled(one, 2) and settled(two, 2) and settled(two, 4)
    # Right on every train pair, another answer on the test input: two verified answers, not settled.
    other = f"def transform(grid):\n    if grid == {GRIDS[3].tolist()}:\n        return grid\n    return [[2 if v == 1 else v for v in row] for row in grid]\n"
    split = verify(TASK, [Candidate("a", RECOLOR), Candidate("c", other)], sandbox)
    assert all(r.verified for r in split) and not settled(split, 1)
    assert not settled(verify(TASK, [Candidate("p", PARTIAL)], sandbox), 1)


# --- rounds: 0, and the run directory ----------------------------------------------------------------


def test_rounds_zero_is_the_single_pass(monkeypatch, engine, sandbox, tmp_path):
    """No search stage, the same record and artifacts whatever the other search settings say."""
    script_sampler(monkeypatch, [[PARTIAL]])
    assert [n for n, _ in stages_for("hybrid")] == ["augment", "loo_eval", "ttt", "induction", "verify", "transduction"]
    assert [n for n, _ in stages_for("code", 2)] == ["augment", "loo_eval", "ttt", "induction", "verify", "search"]
    assert "search" not in dict(stages_for("grid", 2))
    knobs = ["solve.refine_top_k=4", "solve.round_steps=3", "solve.hindsight_cap=1", "solve.search_fraction=0.2"]
    recs, arts = [], []
    for i, cfg in enumerate([config(), config("solve.rounds=0", *knobs)]):
        recs.append(solve_task(TASK, cfg, engine, sandbox, artifacts_dir=tmp_path / str(i)))
        arts.append(json.loads(artifacts_path(tmp_path / str(i), TASK.id).read_text()))
    drop = {"seconds", "tokens_per_s", "train_seconds"}
    a, b = ({k: v for k, v in r.items() if k not in drop} | {"stages": {n: {k: v for k, v in s.items() if k not in drop}
                                                                          for n, s in r["stages"].items()}} for r in recs)
    assert a == b and list(a["stages"]) == ["augment", "loo_eval", "ttt", "induction", "verify", "transduction", "vote"]
    assert "rounds" not in arts[0] and arts[0] == arts[1]
    assert "pre_encoded" not in a["stages"]["ttt"]["samples"]


def test_a_resumed_search_run_does_not_repeat_finished_tasks(monkeypatch, engine, tmp_path):
    other = Task("recolor-b", TASK.train[1:] + TASK.train[:1], TASK.test_inputs, TASK.test_outputs)
    script_sampler(monkeypatch, [[PARTIAL]])
    cfg = config("solve.rounds=1", "solve.round_steps=1", "solve.mode=code")
    solved = []

    def cheap(task, *args, **kwargs):
        solved.append(task.id)
        if task.id == other.id and len(solved) == 2:
            raise KeyboardInterrupt
        return solve_task(task, *args, stages=SEARCH_STAGES, **kwargs)

    quiet = Console(file=open("/dev/null", "w"))
    with pytest.raises(KeyboardInterrupt):
        run_tasks(cfg, [TASK, other], RunOptions(out=tmp_path, progress=False), quiet, engine=engine, solve=cheap)
    run = run_tasks(cfg, [TASK, other], RunOptions(out=tmp_path, progress=False), quiet, engine=engine, solve=cheap)
    assert solved == [TASK.id, other.id, other.id], "the finished task is not solved again"
    assert run.pending() == []
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [TASK.id, other.id]
    assert all(r["stages"]["search"]["rounds_run"] == 1 for r in records)


def test_the_report_counts_what_the_search_verified():
    from solve.pipeline.report import summarize

    records = [
        {"task_id": "a", "status": "ok", "score": 0.0, "stages": {"verify": {"verified": 0}, "search": {"verified": 3}}},
        {"task_id": "b", "status": "ok", "score": 0.0, "stages": {"verify": {"verified": 2}}},
        {"task_id": "c", "status": "ok", "score": 0.0, "stages": {"verify": {"verified": 0}, "search": {"skipped": "data-parallel ranks"}}},
    ]
    s = summarize(records)
    assert (s["programs_verified_per_task"], s["tasks_with_verified_program"]) == (5 / 3, 2)
