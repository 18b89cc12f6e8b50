"""`arc-ttt show RUN_DIR TASK_ID` on real runs of the tiny model (every stage real), read back from disk."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from augment.tasks import load_dataset, small_tasks
from solve.cli.app import app
from solve.pipeline.artifacts import artifacts_path
from solve.pipeline.run import RunOptions
from solve.pipeline.runconfig import load_config
from solve.pipeline.stages import MODEL_STAGES, Engine, solve_task
from solve.placement.dispatch import run_tasks
from ttt.lora import wrap_lora

FAST = [
    "model.source=random:tiny", "augment.n_samples=4", "train.steps=2", "train.max_seq_len=1024",
    "solve.program_views=1", "solve.programs_per_view=2", "solve.program_max_new_tokens=24",
    "solve.grid_views=2", "solve.score_views=2", "sandbox.workers=1",
]
# Task 00576224: tile the 2x2 input 3x3, the middle band mirrored left-right.
TILE = """def transform(grid):
    import numpy as np
    g = np.array(grid)
    row, mirrored = np.hstack([g] * 3), np.hstack([g[:, ::-1]] * 3)
    return np.vstack([row, mirrored, row]).tolist()
"""
runner = CliRunner()


@pytest.fixture(scope="module")
def task():
    return small_tasks(load_dataset("arc-agi-1/evaluation").tasks, 1)[0]


@pytest.fixture(scope="module")
def engine(tokenizer):
    """The tiny random Llama of tests/conftest.py (built here: that fixture is per test, the run per module)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttt.models import RANDOM_PRESETS

    tiny = {k: v for k, v in RANDOM_PRESETS["tiny"].items() if k != "model_type"}
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **tiny)).eval()
    return Engine(wrap_lora(model, load_config("configs/smoke.yaml", FAST).lora), tokenizer)


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def with_known_program(task, *args, **kwargs):
    """The real pipeline, the model's programs followed by one known-correct program (so that `show`
    has a verified program to list); everything else, sandbox and vote included, is real."""

    def induction_plus(s):
        from augment.transforms import Augmentation

        info = dict(MODEL_STAGES)["induction"](s)
        s.sampled.append((Augmentation(), "```python\n" + TILE + "```", len(s.programs)))
        s.programs.append((Augmentation(), TILE))
        return info

    stages = [(n, induction_plus if n == "induction" else f) for n, f in MODEL_STAGES]
    return solve_task(task, *args, stages=stages, **kwargs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, task, engine):
    out = tmp_path_factory.mktemp("run")
    run_tasks(load_config("configs/smoke.yaml", FAST), [task], RunOptions(out=out, progress=False), quiet(), engine=engine,
              solve=with_known_program)
    return out


def shown(args: list[str]) -> tuple[int, str]:
    """Exit code and output of `arc-ttt ARGS`, whitespace collapsed (rich wraps long lines)."""
    res = runner.invoke(app, args)
    return res.exit_code, " ".join(res.output.split())


def test_show_tells_the_story_of_a_task(run_dir, task):
    code, out = shown(["show", str(run_dir), task.id, "--source-lines", "3"])
    assert code == 0, out
    for text in (
        f"task {task.id}: ok, score 1.00",  # the known program solves it
        "stages: augment", "train 0 in", "train 1 out", "test 0 in", "test 0 truth",
        "programs: 3 sampled", "p", "3/3 verified" if len(task.train) == 3 else f"{len(task.train)}/{len(task.train)} verified",
        "... (2 more lines)",  # the program's source, cut at --source-lines
        "grid predictions: 2",  # 2 views x 1 test input
        "chosen attempts", "attempt_1: verified program(s)", "✓", "[no program extracted]",
    ):
        assert text in out, f"{text!r} missing from:\n{out}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "/nonexistent-run", "x"], "not a directory"),
        (["show", "{run}", "no-such-task"], "no task 'no-such-task'"),
    ],
    ids=["no run dir", "unknown task"],
)
def test_show_errors(run_dir, args, message):
    code, out = shown([a.format(run=run_dir) for a in args])
    assert code == 2 and message in out, out


def test_show_without_saved_candidates_still_shows_the_choice(tmp_path, run_dir, task):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    artifacts_path(copy, task.id).unlink()  # as a run with run.save_candidates=false leaves it
    code, out = shown(["show", str(copy), task.id])
    assert code == 0, out
    assert "no candidates saved" in out and "attempt_1: verified program(s)" in out
