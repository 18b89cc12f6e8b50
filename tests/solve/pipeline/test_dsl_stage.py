"""The DSL search stage in the real pipeline: its programs go through the real sandbox, are voted with
the model's (a tiny random model here, which writes nothing useful), are saved in the task's artifacts
with their origin, and the stage is off at depth 0 and in grid mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.artifacts import artifacts_path
from solve.pipeline.report import verified_cell, verified_programs
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import Engine, solve_task, stages_for
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from ttt.lora import wrap_lora

FAST = [
    "model.source=random:tiny", "augment.n_samples=4", "train.steps=1", "train.max_seq_len=1024",
    "solve.program_views=1", "solve.programs_per_view=1", "solve.program_max_new_tokens=16",
    "solve.grid_views=1", "solve.score_views=1", "sandbox.workers=1",
]


def flip_task() -> Task:
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 4, (3, 4)).astype(np.uint8) for _ in range(4)]
    return Task("flipper", tuple(Pair(x, x[:, ::-1].copy()) for x in xs[:3]), (xs[3],), (xs[3][:, ::-1].copy(),))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=1, timeout_s=1.0)) as sb:
        yield sb


@pytest.fixture
def engine(tiny, tokenizer):
    return Engine(wrap_lora(tiny, load_config("configs/smoke.yaml", FAST).lora), tokenizer)


def test_dsl_programs_are_verified_voted_and_saved(engine, sandbox, tmp_path):
    cfg = load_config("configs/smoke.yaml", FAST + ["solve.dsl_search_depth=2", "solve.dsl_search_s=5"])
    task = flip_task()
    rec = solve_task(task, cfg, engine, sandbox, artifacts_dir=tmp_path)
    st = rec["stages"]["dsl_search"]
    assert rec["status"] == "ok" and st["verified"] >= 1 and st["solutions"] >= 1
    assert rec["score"] == 1.0
    first = rec["reasons"][0][0]
    assert first["tier"] == "verified" and any(p.startswith("dsl") for p in first["programs"])
    assert verified_programs(rec) >= 1 and "dsl" in verified_cell(rec)
    saved = json.loads(artifacts_path(tmp_path, task.id).read_text())
    dsl = [p for p in saved["programs"] if p.get("origin") == "dsl"]
    assert dsl and dsl[0]["verified"] and dsl[0]["kind"] == "solution" and "from solve.dsl import *" in dsl[0]["source"]


def test_near_misses_enter_as_unverified_programs(engine, sandbox):
    rng = np.random.default_rng(4)
    xs = [rng.integers(0, 4, (4, 4)).astype(np.uint8) for _ in range(4)]

    def rule(x):  # flip the first row only: no one or two calls do it
        y = x.copy()
        y[0] = y[0, ::-1]
        return y

    task = Task("rowflip", tuple(Pair(x, rule(x)) for x in xs[:3]), (xs[3],), (rule(xs[3]),))
    cfg = load_config("configs/smoke.yaml", FAST + ["solve.dsl_search_depth=1", "solve.dsl_search_keep=2", "solve.mode=code"])
    rec = solve_task(task, cfg, engine, sandbox)
    st = rec["stages"]["dsl_search"]
    assert st["solutions"] == 0 and st["near_misses"] == 2 and st["verified"] == 0


def test_stage_only_runs_when_asked():
    assert "dsl_search" not in dict(stages_for("hybrid", 0, 0))
    assert [n for n, _ in stages_for("hybrid", 0, 2)][:3] == ["augment", "dsl_search", "loo_eval"]
    assert "dsl_search" not in dict(stages_for("grid", 0, 2))


def test_the_task_line_names_the_verified_dsl_program():
    from solve.pipeline.report import task_line

    rec = {"task_id": "t1", "status": "ok", "score": 1.0, "seconds": 12.3,
           "stages": {"dsl_search": {"verified": 1, "programs": ["x1 = flip_h(g)"]}, "verify": {"verified": 0}}}
    assert task_line(rec) == "t1: ok, score 1.00, 12 s, verified programs 1 (dsl 1): x1 = flip_h(g)"
    rec["stages"]["dsl_search"]["verified"] = 0
    assert task_line(rec) == "t1: ok, score 1.00, 12 s, verified programs 0 (dsl 0)"
