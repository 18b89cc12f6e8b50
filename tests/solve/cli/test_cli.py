"""The `arc-ttt` command line, run as a user runs it (a real subprocess for the end-to-end job)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from solve.cli.app import app

runner = CliRunner()


def test_augment_prints_samples_and_report():
    res = runner.invoke(app, ["augment", "--dataset", "arc-agi-1/training", "--task", "68b16354", "--n", "8", "--show", "1"])
    assert res.exit_code == 0, res.output
    assert "sample 0: held-out pair 0, identity" in res.output
    assert "generated 8, kept 8" in res.output


def test_augment_json():
    res = runner.invoke(app, ["augment", "--dataset", "arc-agi-1/training", "--task", "68b16354", "--set", "geometric", "--n", "32", "--json"])
    data = json.loads(res.output)
    assert data["kept"] == 24 and "only 24 distinct" in data["notes"][0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["augment", "--dataset", "arc-agi-9/x", "--task", "a"], "unknown dataset"),
        (["augment", "--dataset", "arc-agi-1/training", "--task", "nope"], "nope: no such task id"),
        (["augment", "--dataset", "arc-agi-1/training", "--task", "68b16354", "--set", "zoom"], "unknown augmentation set"),
        (["run", "--out", "/tmp/x", "--dataset", "arc-agi-1/training", "--set", "train.steps=lots"], "train.steps"),
        (["run", "--out", "/tmp/x", "--dataset", "arc-agi-1/training", "--shard", "3/2"], "--shard"),
        (["score", "--submission", "/nonexistent.json", "--dataset", "arc-agi-1/training"], "/nonexistent.json"),
    ],
    ids=["bad dataset", "bad task id", "bad set", "bad override", "bad shard", "missing submission"],
)
def test_clear_errors(args, message):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output


def test_verify_table_and_json(tmp_path):
    good = tmp_path / "flip.py"
    good.write_text("def transform(grid):\n    return grid[::-1]\n")
    bad = tmp_path / "same.py"
    bad.write_text("def transform(grid):\n    return grid\n")
    res = runner.invoke(app, ["verify", "--dataset", "arc-agi-1/training", "--task", "68b16354", str(good), str(bad), "--json"])
    assert res.exit_code == 0, res.output
    progs = json.loads(res.output)["programs"]
    assert [p["outcome"] for p in progs[0]["pairs"]] == ["correct"] * 4
    assert {p["outcome"] for p in progs[1]["pairs"]} == {"wrong"}


def test_score_of_true_and_placeholder_answers(tmp_path):
    from augment.tasks import load_dataset

    tasks = load_dataset("arc-agi-1/evaluation").tasks[:3]
    sub = {t.id: [{"attempt_1": [[0]], "attempt_2": y.tolist()} for y in t.test_outputs] for t in tasks}
    sub[tasks[2].id] = [{"attempt_1": [[0]], "attempt_2": [[0]]} for _ in tasks[2].test_outputs]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sub))
    res = runner.invoke(app, ["score", "--submission", str(path), "--dataset", "arc-agi-1/evaluation", "--json"])
    data = json.loads(res.output)
    assert data["total"] == pytest.approx(2 / 3)
    assert data["per_task"][tasks[2].id] == 0.0


@pytest.mark.slow
def test_run_with_the_real_embedded_model(tmp_path):
    """The README's main job, shrunk to one small task: the real SmolLM2-135M, real sandbox, real files."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "solve.cli.app", "run", "--config", "configs/smoke.yaml", "--dataset", "arc-agi-1/evaluation",
           "--demo-tasks", "1", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (rec,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok", rec["error"]
    assert rec["stages"]["ttt"]["steps"] == 2
    assert rec["stages"]["ttt"]["nll_after"] < rec["stages"]["ttt"]["nll_before"], "two steps of TTT should help"
    assert "score:" in proc.stdout and "submission:" in proc.stdout
    from augment.tasks import load_dataset
    from solve.select.submission import validate_submission

    tasks = [t for t in load_dataset("arc-agi-1/evaluation").tasks if t.id == rec["task_id"]]
    assert validate_submission(json.loads((out / "submission.json").read_text()), tasks) == []
