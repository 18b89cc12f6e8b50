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
    drop = {"seconds", "tokens_per_s", "train_seconds"}
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


def test_stage_times_add_up_and_candidates_are_saved(tmp_path, two_tasks, cfg, engine):
    """Each stage's `seconds` is its whole time (the ttt stage's NLL passes included), so the stages add
    up to the task; DIR/tasks/<id>.json holds every sampled program and grid prediction."""
    from solve.pipeline.artifacts import artifacts_path

    run_tasks(cfg, two_tasks[:1], RunOptions(out=tmp_path, progress=False), quiet(), engine=engine)
    (rec,) = read_records(tmp_path)
    stage_sum = sum(s["seconds"] for s in rec["stages"].values())
    assert abs(stage_sum - rec["seconds"]) <= 0.02 + 0.01 * rec["seconds"], (stage_sum, rec["seconds"])
    ttt = rec["stages"]["ttt"]
    assert ttt["seconds"] >= ttt["train_seconds"] > 0
    data = json.loads(artifacts_path(tmp_path, rec["task_id"]).read_text())
    assert len(data["programs"]) == rec["stages"]["induction"]["sampled"]
    assert all({"view", "text", "source"} <= set(p) for p in data["programs"])
    assert len(data["grids"]) == rec["stages"]["transduction"]["predictions"]
    assert all({"test_index", "view", "text", "grid", "error"} <= set(g) for g in data["grids"])
    assert data["task"]["test"][0]["output"] == two_tasks[0].test_outputs[0].tolist(), "the truth is kept when known"
    assert data["attempts"] == rec["attempts"] and data["reasons"] == rec["reasons"]
    assert not list(tmp_path.glob("tasks/.*.tmp")), "written atomically: no temp file left"
    assert "test outputs solved" in (tmp_path / "report.md").read_text()


def test_no_candidates_file_when_switched_off(tmp_path, two_tasks, engine):
    from solve.pipeline.artifacts import artifacts_path

    off = load_config("configs/smoke.yaml", FAST + ["run.save_candidates=false", "solve.mode=grid"])
    run_tasks(off, two_tasks[:1], RunOptions(out=tmp_path, progress=False), quiet(), engine=engine)
    assert read_records(tmp_path)[0]["status"] == "ok"
    assert not artifacts_path(tmp_path, two_tasks[0].id).exists()


def test_training_gets_its_fraction_of_the_time_and_the_rest_still_runs(two_tasks, engine):
    """Training that would run forever stops at run.ttt_time_fraction of the task's time; sampling,
    verification and scoring still run in what is left (before: training took the whole task)."""
    from solve.sandbox.pool import Sandbox

    limit, fraction = 12.0, 0.25
    slow = load_config("configs/smoke.yaml", FAST + ["train.steps=100000", f"run.ttt_time_fraction={fraction}", f"run.task_timeout_s={limit}"])
    with Sandbox(slow.sandbox) as sandbox:
        rec = solve_task(two_tasks[0], slow, engine, sandbox)
    ttt = rec["stages"]["ttt"]
    assert ttt["stopped_by"] == "deadline" and 0 < ttt["steps"] < 100000
    assert 0.5 * fraction * limit <= ttt["train_seconds"] <= fraction * limit + 0.5
    assert rec["status"] == "ok", rec["error"]
    assert {"induction", "verify", "transduction", "vote"} <= set(rec["stages"])
    assert rec["stages"]["induction"]["sampled"] == 2


def test_loo_eval_keeps_to_the_step_cap_and_the_deadline(two_tasks, engine):
    from solve.pipeline.stages import stage_augment, stage_loo_eval

    task = next(t for t in two_tasks if len(t.train) >= 3)
    stages = [("augment", stage_augment), ("loo_eval", stage_loo_eval)]
    loo_cfg = load_config("configs/smoke.yaml", FAST + ["run.eval_loo_nll=true", "train.steps=5"])
    capped = solve_task(task, loo_cfg, engine, None, train_steps=1, stages=stages)["stages"]["loo_eval"]
    assert capped["steps"] == [1] * len(task.train) and capped["stopped_by"] == "pairs", "the planner's cap applies"

    slow = load_config("configs/smoke.yaml", FAST + ["run.eval_loo_nll=true", "train.steps=100000", "run.ttt_time_fraction=0.2",
                                                      "run.task_timeout_s=5"])
    rec = solve_task(task, slow, engine, None, stages=stages)
    loo = rec["stages"]["loo_eval"]
    # Training stops before a step that would end past the deadline, so one more pair may start just
    # before it (and train little or nothing); none starts after it.
    assert loo["stopped_by"] == "deadline" and 1 <= loo["pairs"] < len(task.train), loo
    assert loo["seconds"] < 0.2 * 5 + 1.5 and rec["status"] == "ok"


def test_augment_and_loo_build_the_same_samples(two_tasks, cfg):
    """One builder for TTT and leave-one-out samples: every augment flag reaches both."""
    from ttt.holdout import task_samples

    flagged = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"set": "geometric+color", "permute_background": True})})
    from solve.pipeline.stages import TaskState, stage_augment

    s = TaskState(two_tasks[0], flagged, None, None, None)
    stage_augment(s)
    expected, _ = task_samples(two_tasks[0], flagged.augment, flagged.run.seed)
    assert [x.key() for x in s.samples] == [x.key() for x in expected]
    assert any(x.augmentation.colors[0] != 0 for x in s.samples)


@pytest.mark.parametrize(
    "scores, attempts, expected",
    [
        ([1.0, 0.5], [2, 2], (4, 3, 0.75)),
        ([1.0, None], [1, 3], (1, 1, 1.0)),  # unknown outputs are not counted
        ([0.0, 1.0, 1.0], [3, 1, 1], (5, 2, 0.4)),  # the mean over tasks is 2/3; over test outputs 2/5
    ],
)
def test_summary_gives_the_task_mean_and_the_test_output_fraction(scores, attempts, expected):
    from solve.pipeline.report import report_markdown, summarize

    records = [{"task_id": f"t{i}", "status": "ok", "score": s, "attempts": [{}] * n, "stages": {}} for i, (s, n) in enumerate(zip(scores, attempts))]
    out = summarize(records)
    assert (out["test_outputs"], out["test_outputs_solved"], out["test_output_fraction"]) == pytest.approx(expected)
    assert out["score"] == pytest.approx(np_mean([s for s in scores if s is not None]))
    assert f"test outputs solved: {expected[1]}/{expected[0]}" in report_markdown(records)


def np_mean(values):
    return sum(values) / len(values)


# --- transduction end to end, on a tiny model taught one task -------------------------------------------


def tiny_that_can_stop(tokenizer):
    """The tiny random Llama of tests/conftest.py, but without `pad_token_id`: SmolLM2 pads with
    <|im_end|>, and a padding row of a (tied) embedding starts at zero and gets no gradient, so a model
    built with it can never learn to end an answer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttt.models import RANDOM_PRESETS

    tiny = {k: v for k, v in RANDOM_PRESETS["tiny"].items() if k != "model_type"}
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **tiny)).eval()


@pytest.fixture(scope="module")
def taught(tokenizer):
    """A tiny model taught, under three views of one task, the view's test output under two views and a
    wrong grid under the third: (engine, task, config, truth, wrong)."""
    import numpy as np

    from augment.gridtext import grid_to_text
    from augment.loo import Sample
    from augment.tasks import Pair, Task
    from solve.pipeline.stages import task_views
    from ttt.config import TrainConfig
    from ttt.lora import reset_adapter
    from ttt.prompts import encode_sample
    from ttt.train import adapt

    def g(*rows):
        return np.array(rows, dtype=np.uint8)

    train = (Pair(g([1, 2], [3, 4]), g([3, 4], [1, 2])), Pair(g([5, 0], [0, 6]), g([0, 6], [5, 0])))  # flip upside down
    x = g([1, 0, 2], [0, 3, 0], [4, 0, 0])
    truth, wrong = x[::-1].copy(), g([9, 9, 1], [0, 3, 0], [4, 0, 0])
    task = Task("flip3", train, (x,), (truth,))
    grid_cfg = load_config("configs/smoke.yaml", [
        "model.source=random:tiny", "solve.mode=grid", "augment.set=geometric", "solve.grid_views=3", "solve.score_views=3",
    ])
    views = task_views(task, grid_cfg, 3)
    assert [v.name for v in views] == ["identity", "rot90", "rot180"]
    samples = [
        Sample(task.id, v.apply_task(task).train, v.apply_grid(x), v.apply_grid(wrong if k == 2 else truth), v, -1)
        for k, v in enumerate(views)
    ]
    model = wrap_lora(tiny_that_can_stop(tokenizer), grid_cfg.lora)
    reset_adapter(model, 0)
    result = adapt(model, tokenizer, samples, TrainConfig(steps=80, lr=1e-2, warmup_steps=0, schedule="constant", batch_tokens=4096))
    assert result.losses[-1] < 0.1, result.losses[-5:]
    assert all(encode_sample(tokenizer, s.context, s.query, grid_to_text(s.target)) for s in samples)
    return Engine(model, tokenizer), task, grid_cfg, truth, wrong


def test_transduction_parses_maps_back_scores_and_votes(tmp_path, taught):
    """Real model path: greedy predictions under each view parse, map back through the view's inverse
    (the rot90 view writes a rotated grid), are scored by product of experts over the views, and the
    vote takes the grid the views agree on and the model likes under most of them."""
    from solve.pipeline.artifacts import artifacts_path
    from solve.pipeline.stages import stage_transduction

    engine, task, grid_cfg, truth, wrong = taught
    rec = solve_task(task, grid_cfg, engine, None, stages=[("transduction", stage_transduction)], artifacts_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    st = rec["stages"]["transduction"]
    assert (st["predictions"], st["parsed"], st["candidates"], st["scoring_skipped"]) == (3, 3, 2, False)
    assert rec["attempts"] == [{"attempt_1": truth.tolist(), "attempt_2": wrong.tolist()}]
    assert rec["score"] == 1.0
    first, second = rec["reasons"][0]
    assert first["tier"] == "extra" and first["rank"] == 0 and "views=2" in first["source"]
    assert second["tier"] == "extra" and second["score"] < first["score"]

    data = json.loads(artifacts_path(tmp_path, task.id).read_text())
    by_view = {p["view"]: p for p in data["grids"]}
    assert by_view["rot90"]["text"].startswith("3x3\n002\n030\n401"), "written in the view's frame"
    assert by_view["rot90"]["grid"] == truth.tolist() and by_view["rot180"]["grid"] == wrong.tolist(), "mapped back"
    (best, other), = data["candidates"]
    assert best["grid"] == truth.tolist() and sorted(best["views"]) == ["identity", "rot90"] and other["views"] == ["rot180"]
    assert set(best["per_view"]) == {"identity", "rot90", "rot180"}
    assert best["score"] == pytest.approx(sum(best["per_view"].values()), abs=1e-3), "product of experts: summed log-probs"
    # Each candidate is likeliest under the views that taught it.
    assert best["per_view"]["identity"] > other["per_view"]["identity"] and best["per_view"]["rot180"] < other["per_view"]["rot180"]


def test_inference_prompts_are_shortened_and_counted(two_tasks, engine):
    """Generation prompts lose context pairs, as training samples do, when prompt + the answer's token
    cap is over train.max_seq_len; the stages count them (before: never shortened)."""
    from solve.pipeline.stages import stage_induction, stage_transduction
    from ttt.decoding.sample import grid_token_budget
    from ttt.prompts import fit_prompt

    task, tok = two_tasks[0], engine.tokenizer
    program_cap = 24
    grid_cap = grid_token_budget(task, tok)

    def lengths(pairs):
        return (len(fit_prompt(tok, "program", pairs, None, task.test_inputs).ids) + program_cap,
                len(fit_prompt(tok, "grid", pairs, task.test_inputs[0]).ids) + grid_cap)

    one, full = lengths(task.train[-1:]), lengths(task.train)
    max_len = max(one)
    assert max_len < min(full), "the limit must force shortening of both prompt kinds"
    short = load_config("configs/smoke.yaml", FAST + [f"train.max_seq_len={max_len}", f"solve.program_max_new_tokens={program_cap}",
                                                       "solve.grid_views=1", "solve.score_views=1"])
    rec = solve_task(task, short, engine, None, stages=[("induction", stage_induction), ("transduction", stage_transduction)])
    assert rec["status"] == "ok", rec["error"]
    assert rec["stages"]["induction"]["shortened_prompts"] == 1
    assert rec["stages"]["transduction"]["shortened_prompts"] == len(task.test_inputs)
