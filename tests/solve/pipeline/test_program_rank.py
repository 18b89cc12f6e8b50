"""The vote's model tie-break (solve.pipeline.program_rank): programs are scored only when verified programs
disagree, under their own view's program prompt, and the vote records it; without a model it falls back
to weight and length. The sampler is scripted (the tiny random model writes no programs); the sandbox,
verification, scoring and the vote are real."""

from __future__ import annotations

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.program_rank import MAX_SCORED, PER_OUTPUT, disagreeing, rank_scores
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import Engine, TaskState, solve_task, stage_augment, stage_induction, stage_verify
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from solve.sandbox.verify import ProgramResult
from ttt.decoding.sample import ProgramText
from ttt.lora import wrap_lora

FAST = ["model.source=random:tiny", "augment.n_samples=2", "solve.program_views=1", "solve.programs_per_view=2", "sandbox.workers=1"]
rng = np.random.default_rng(3)
GRIDS = [rng.integers(0, 4, (3, 3)).astype(np.uint8) for _ in range(4)]
TASK = Task("recolor", tuple(Pair(x, np.where(x == 1, 2, x).astype(np.uint8)) for x in GRIDS[:3]), (GRIDS[3],))
RECOLOR = "def transform(grid):\n    return [[2 if v == 1 else v for v in row] for row in grid]\n"
# Right on every train pair, another answer on the test input.
OTHER = f"def transform(grid):\n    if grid == {GRIDS[3].tolist()}:\n        return [[2 if v == 1 else v for v in col] for col in zip(*grid)]\n    return [[2 if v == 1 else v for v in row] for row in grid]\n"


def res(pid, out, source="x"):
    return ProgramResult(pid, "identity", source, 1, 1, [out], {}, 0.0)


def test_only_disagreeing_verified_programs_are_scored():
    a, b = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)
    assert disagreeing([res("p1", a), res("p2", a)], 1) == [], "they agree: no model time"
    many = [res(f"a{k}", a, "x" * (10 - k)) for k in range(6)] + [res("b", b)]
    assert [r.program_id for r in disagreeing(many, 1)] == [f"a{k}" for k in range(5, 5 - PER_OUTPUT, -1)] + ["b"]
    lots = [res(f"p{k}", np.full((2, 2), k % 200, np.uint8)) for k in range(MAX_SCORED + 5)]
    assert len(disagreeing(lots, 1)) == MAX_SCORED


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=1, timeout_s=1.0)) as sb:
        yield sb


def scripted(monkeypatch, sources):
    def sample_programs(model, tokenizer, task, views, per_view, cfg, seed, max_time=None, ranks=None, max_seq_len=None):
        return [ProgramText(v, f"```python\n{src}```") for v in views for src in sources]

    monkeypatch.setattr("ttt.decoding.sample.sample_programs", sample_programs)


def test_disagreeing_programs_are_ranked_by_the_model(monkeypatch, tiny, tokenizer, sandbox):
    cfg = load_config("configs/smoke.yaml", FAST)
    engine = Engine(wrap_lora(tiny, cfg.lora), tokenizer)
    scripted(monkeypatch, [RECOLOR, OTHER])
    stages = [("augment", stage_augment), ("induction", stage_induction), ("verify", stage_verify)]
    rec = solve_task(TASK, cfg, engine, sandbox, stages=stages)
    assert rec["status"] == "ok", rec["error"]
    assert rec["stages"]["rank"]["scored"] == 2
    reasons = rec["reasons"][0]
    assert [r["tier"] for r in reasons] == ["verified", "verified"] and all(r["program_logprob"] < 0 for r in reasons)
    # Equal weight: the shorter program first, whatever the model says.
    assert reasons[0]["programs"] == ["p0"]

    scripted(monkeypatch, [RECOLOR, RECOLOR.replace("grid", "g")])
    rec = solve_task(TASK, cfg, engine, sandbox, stages=stages)
    assert "rank" not in rec["stages"], "no disagreement, no scoring"


def test_without_a_model_the_vote_falls_back(monkeypatch, sandbox):
    cfg = load_config("configs/smoke.yaml", FAST)
    from solve.sandbox.verify import Candidate, verify

    s = TaskState(TASK, cfg, None, sandbox, None)
    s.program_results = verify(TASK, [Candidate("p0", RECOLOR), Candidate("p1", OTHER)], sandbox)
    assert rank_scores(s) == ({}, {"scored": 0, "skipped": "no model"})
