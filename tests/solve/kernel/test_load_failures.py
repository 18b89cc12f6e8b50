"""Every id of the challenges file is answered, whatever its content: tasks that do not parse keep
placeholder attempts (one per test entry, at least one) and are recorded as failed at stage "load",
through `arc-ttt run --tasks FILE` and through the Kaggle kernel's entry point. A missing id is a
scoring error for the whole Kaggle submission."""

from __future__ import annotations

import copy
import json

from typer.testing import CliRunner

from augment.tasks import load_challenges
from solve.cli.app import app
from solve.kernel.main import main
from solve.kernel.rehearse import build_fake_kaggle, kernel_argv
from solve.pipeline.rundir import read_results
from solve.select.submission import validate_submission


def _broken(good: dict) -> dict[str, tuple[object, int]]:
    """Every kind of broken task: id -> (task data, submission entries it must get)."""

    def edit(path: tuple, value: object) -> dict:
        data = copy.deepcopy(good)
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return data

    grid = good["test"][0]["input"]
    return {
        "b-ragged-train": (edit(("train", 0, "input"), [[0, 1], [2]]), 1),
        "b-ragged-test": (edit(("test",), [{"input": [[1, 2], [3]]}, {"input": grid}]), 2),
        "b-missing-test": (edit(("test",), KeyError), 1),
        "b-test-not-list": (edit(("test",), {"input": grid}), 1),
        "b-test-entry-not-dict": (edit(("test",), [[[1]], {"input": grid}]), 2),
        "b-not-a-dict": ([1, 2, 3], 1),
        "b-null": (None, 1),
        "b-color-10": (edit(("train", 0, "output"), [[10]]), 1),
        "b-31x31": (edit(("train", 0, "input"), [[0] * 31] * 31), 1),
        "b-test-31x31": (edit(("test", 0, "input"), [[0] * 31] * 31), 1),
        "b-empty-train": (edit(("train",), []), 1),
        "b-empty-test": (edit(("test",), []), 1),
    }


def _write_challenges(path, good_tasks) -> dict[str, tuple[object, int]]:
    """Two good tasks with broken ones between them; returns the broken ones."""
    good = {t.id: {"train": t.to_json()["train"], "test": [{"input": x.tolist()} for x in t.test_inputs]} for t in good_tasks}
    broken = _broken(next(iter(good.values())))
    first, second = list(good)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({first: good[first]} | {k: v for k, (v, _) in broken.items()} | {second: good[second]}))
    return broken


def _check_every_id_answered(out, challenges, good_ids, broken) -> None:
    sub = json.loads((out / "submission.json").read_text())
    ids = list(json.loads(challenges.read_text()))
    assert sorted(sub) == sorted(ids), "every id of the challenges file is in the submission"
    assert validate_submission(sub, load_challenges(challenges).with_unloadable()) == []
    for tid, (_, entries) in broken.items():
        assert len(sub[tid]) == entries, tid
    recs = {r["task_id"]: r for r in read_results(out / "results.jsonl")}
    assert set(recs) == set(ids)
    for tid in broken:
        assert recs[tid]["status"] == "failed" and recs[tid]["error"]["stage"] == "load", tid
        assert recs[tid]["error"]["message"]  # the loader's reason
        assert sub[tid] == recs[tid]["attempts"]
    for tid in good_ids:
        assert recs[tid]["status"] == "ok", recs[tid].get("error")
    assert "b-ragged-train" in recs["b-ragged-train"]["error"]["message"] and "ragged" in recs["b-ragged-train"]["error"]["message"]


def test_cli_run_answers_every_id_and_refuses_a_resume_with_another_config(tmp_path, small_tasks, config, fast):
    challenges = tmp_path / "challenges.json"
    broken = _write_challenges(challenges, small_tasks[:2])
    out = tmp_path / "run"
    sets = [a for kv in ["model.source=random:tiny", *fast] for a in ("--set", kv)]
    args = ["run", "--out", str(out), "--tasks", str(challenges), "--config", str(config), *sets, "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output[-3000:]
    assert "cannot load" in res.output and "recorded as failed" in res.output
    _check_every_id_answered(out, challenges, [t.id for t in small_tasks[:2]], broken)

    # 6. Resuming the directory with another --set value is refused, naming the key; nothing is written.
    before = (out / "results.jsonl").read_bytes(), (out / "config.yaml").read_text()
    res = CliRunner().invoke(app, [*args, "--set", "train.steps=2"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "train.steps: 1 saved, 2 now" in text, res.output[-3000:]
    assert ((out / "results.jsonl").read_bytes(), (out / "config.yaml").read_text()) == before
    res = CliRunner().invoke(app, args)  # the same config resumes: nothing left to do
    assert res.exit_code == 0 and (out / "results.jsonl").read_bytes() == before[0], res.output[-3000:]


def test_kernel_answers_every_id_of_a_challenges_file_with_broken_tasks(tmp_path, small_tasks, config, fast):
    fake = build_fake_kaggle(tmp_path, small_tasks[:2], "random:tiny")
    broken = _write_challenges(fake.challenges, small_tasks[:2])
    # The notebook's first cell wrote a placeholder with every id; the run directory must not lose any.
    argv = kernel_argv(fake, config, 600, 0, fast, ["--no-watchdog", "--min-start-s", "5"])
    assert main(argv) == 0
    _check_every_id_answered(fake.working, fake.challenges, [t.id for t in small_tasks[:2]], broken)
    assert main(argv) == 0  # a restart records nothing twice
    assert len(read_results(fake.working / "results.jsonl")) == len(json.loads(fake.challenges.read_text()))
