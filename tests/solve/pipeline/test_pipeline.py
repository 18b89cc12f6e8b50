"""The per-task pipeline and the run directory, end to end: a tiny random model on real ARC tasks
(every stage real: training, batched generation, the sandbox, voting), resume, and fault injection."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from augment.tasks import load_challenges, load_dataset, small_tasks
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import MODEL_STAGES, Engine, solve_task, stage_verify
from solve.placement.dispatch import run_tasks
from solve.select.submission import validate_submission
from ttt.lora import wrap_lora

FAST = [
    "model.source=random:tiny", "augment.n_samples=4", "train.steps=2", "train.max_seq_len=1024",
    "solve.program_views=1", "solve.programs_per_view=2", "solve.program_max_new_tokens=24",
    "solve.grid_views=2", "solve.score_views=2", "sandbox.workers=1",
]
STAGES = ("augment", "loo_eval", "ttt", "induction", "verify", "transduction", "vote")


@pytest.fixture(scope="module")
def two_tasks():
    return small_tasks(load_dataset("arc-agi-1/evaluation").tasks, 2)


@pytest.fixture
def cfg():
    return load_config("configs/smoke.yaml", FAST)


@pytest.fixture
def engine(tiny, tokenizer, cfg):
    return Engine(wrap_lora(tiny, cfg.lora), tokenizer)


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def comparable(rec: dict) -> dict:
    """A record without wall-clock fields (seconds, tokens/s), which differ between identical runs."""
    drop = {"seconds", "tokens_per_s"}
    out = {k: v for k, v in rec.items() if k not in drop}
    out["stages"] = {n: {k: v for k, v in s.items() if k not in drop} for n, s in rec["stages"].items()}
    return out


def read_records(path) -> list[dict]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def test_end_to_end_tiny_model(tmp_path, two_tasks, cfg, engine):
    run = run_tasks(cfg, two_tasks, RunOptions(out=tmp_path, progress=False), quiet(), engine=engine)
    records = read_records(tmp_path)
    assert [r["task_id"] for r in records] == [t.id for t in two_tasks]
    sub = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sub, two_tasks) == []
    for r in records:
        assert r["status"] == "ok", r["error"]
        assert set(r["stages"]) == set(STAGES), "every stage ran and was timed"
        assert all(s["seconds"] >= 0 for s in r["stages"].values())
        assert r["stages"]["ttt"]["steps"] == 2 and len(r["stages"]["ttt"]["losses"]) == 2
        assert r["stages"]["induction"]["sampled"] == 2
        assert r["stages"]["transduction"]["predictions"] == 2 * len(r["attempts"])
        assert r["stages"]["ttt"]["nll_before"] is not None and r["stages"]["ttt"]["nll_after"] is not None
        assert r["score"] in (0.0, 0.5, 1.0)
        assert sub[r["task_id"]] == r["attempts"]
    assert (tmp_path / "config.yaml").read_text().count("random:tiny") == 1
    assert "| stage |" in (tmp_path / "report.md").read_text()
    assert run.pending() == []


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, two_tasks, cfg, engine):
    full = tmp_path / "full"
    run_tasks(cfg, two_tasks, RunOptions(out=full, progress=False), quiet(), engine=engine)

    def interrupt_on_second(task, *args, **kwargs):
        if task.id == two_tasks[1].id:
            raise KeyboardInterrupt
        return solve_task(task, *args, **kwargs)

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_tasks(cfg, two_tasks, RunOptions(out=part, progress=False), quiet(), engine=engine, solve=interrupt_on_second)
    # Interrupted: the first task is recorded and the submission is complete and valid.
    assert [r["task_id"] for r in read_records(part)] == [two_tasks[0].id]
    assert validate_submission(json.loads((part / "submission.json").read_text()), two_tasks) == []

    run_tasks(cfg, two_tasks, RunOptions(out=part, progress=False), quiet(), engine=engine)
    assert [comparable(r) for r in read_records(part)] == [comparable(r) for r in read_records(full)]
    assert (part / "submission.json").read_text() == (full / "submission.json").read_text()


def test_tasks_the_deadline_never_started_run_on_resume(tmp_path, two_tasks, cfg, engine):
    """A global deadline too close to start anything records both tasks as 'deadline' with placeholders
    (the submission is valid); the same run resumed with time solves them, and their new records win."""
    run_tasks(cfg, two_tasks, RunOptions(out=tmp_path, global_deadline_s=0.01, progress=False), quiet(), engine=engine)
    skipped = read_records(tmp_path)
    assert [r["status"] for r in skipped] == ["deadline", "deadline"]
    assert all(r["error"]["stage"] == "budget" and r["stages"] == {} for r in skipped)
    assert validate_submission(json.loads((tmp_path / "submission.json").read_text()), two_tasks) == []

    run = run_tasks(cfg, two_tasks, RunOptions(out=tmp_path, progress=False), quiet(), engine=engine)
    assert run.pending() == [] and all(r["status"] == "ok" for r in run.done.values())
    assert [r["status"] for r in read_records(tmp_path)] == ["deadline", "deadline", "ok", "ok"]
    sub = json.loads((tmp_path / "submission.json").read_text())
    assert all(sub[tid] == rec["attempts"] for tid, rec in run.done.items())


def test_a_failing_stage_is_recorded_and_the_run_goes_on(tmp_path, two_tasks, cfg, engine):
    bad_id = two_tasks[0].id

    def solve_with_fault(task, *args, **kwargs):
        if task.id != bad_id:
            return solve_task(task, *args, **kwargs)

        def explode(state):
            raise RuntimeError("injected failure in transduction")

        stages = [(n, explode if n == "transduction" else f) for n, f in MODEL_STAGES]
        return solve_task(task, *args, stages=stages, **kwargs)

    run_tasks(cfg, two_tasks, RunOptions(out=tmp_path, progress=False), quiet(), engine=engine, solve=solve_with_fault)
    bad, good = read_records(tmp_path)
    assert bad["status"] == "failed" and bad["error"]["stage"] == "transduction"
    assert bad["error"]["type"] == "RuntimeError" and "injected failure" in bad["error"]["traceback"]
    assert bad["stages"]["ttt"]["steps"] == 2, "stages before the failure kept their results"
    assert len(bad["attempts"]) == len(two_tasks[0].test_inputs), "partial/placeholder attempts are still written"
    assert good["status"] == "ok"
    assert validate_submission(json.loads((tmp_path / "submission.json").read_text()), two_tasks) == []


def test_garbage_from_the_sampler_is_contained(two_tasks, cfg, engine):
    """A sampler that returns junk: unparsable text, hostile and broken programs. All real sandbox runs."""
    from solve.sandbox.pool import Sandbox

    junk = ["", "lorem ipsum", "def transform(grid):\n    return 'garbage'", "def transform(grid)\n  syntax error",
            "import os\ndef transform(grid):\n    os.kill(os.getppid(), 9)\n    return grid",
            "def transform(grid):\n    while True: pass"]

    def junk_induction(state):
        from augment.transforms import Augmentation
        from solve.sandbox.programs import extract_program

        found = [extract_program(t) for t in junk]
        state.programs = [(Augmentation(), e.source) for e in found if e.source is not None]
        return {"sampled": len(junk), "parsed": len(state.programs)}

    stages = [("induction", junk_induction), ("verify", stage_verify)]
    with Sandbox(cfg.sandbox.model_copy(update={"timeout_s": 0.5})) as sandbox:
        rec = solve_task(two_tasks[0], cfg, engine, sandbox, stages=stages)
    assert rec["status"] == "ok"
    assert rec["stages"]["induction"] == {"seconds": rec["stages"]["induction"]["seconds"], "sampled": 6, "parsed": 4}
    assert rec["stages"]["verify"]["verified"] == 0
    errors = rec["stages"]["verify"]["program_errors"]
    assert "syntax" in errors and "timeout" in errors, errors
    assert all(a["attempt_1"] and a["attempt_2"] for a in rec["attempts"])


def test_malformed_task_is_reported_and_the_others_load(tmp_path, two_tasks):
    data = {t.id: t.to_json() for t in two_tasks}
    data["broken"] = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}
    path = tmp_path / "challenges.json"
    path.write_text(json.dumps(data))
    loaded = load_challenges(path)
    assert [t.id for t in loaded.tasks] == [t.id for t in two_tasks]
    (issue,) = loaded.issues
    assert issue.task_id == "broken" and "ragged" in issue.problem and str(path) in issue.source


def test_task_deadline_stops_the_pipeline(two_tasks, cfg, engine):
    import time

    from solve.sandbox.pool import Sandbox

    with Sandbox(cfg.sandbox) as sandbox:
        rec = solve_task(two_tasks[0], cfg, engine, sandbox, deadline=time.monotonic() - 1)
    assert rec["status"] == "deadline" and rec["error"]["type"] == "DeadlineReached"
    assert rec["error"]["stage"] == "augment"
    assert validate_submission({two_tasks[0].id: rec["attempts"]}, [two_tasks[0]]) == []


def test_leave_one_out_nll_when_asked(two_tasks, engine):
    from solve.sandbox.pool import Sandbox

    task = next(t for t in two_tasks if len(t.train) >= 3)
    cfg = load_config("configs/smoke.yaml", FAST + ["run.eval_loo_nll=true", "solve.mode=grid"])
    with Sandbox(cfg.sandbox) as sandbox:
        rec = solve_task(task, cfg, engine, sandbox)
    loo = rec["stages"]["loo_eval"]
    assert rec["status"] == "ok" and loo["pairs"] == len(task.train)
    assert loo["nll_after"] > 0 and loo["nll_after"] != loo["nll_before"]
