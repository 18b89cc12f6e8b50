import json

import numpy as np
import pytest

from augment.tasks import Pair, Task, load_dataset
from solve.select.submission import (
    entry,
    placeholder_submission,
    score,
    validate_submission,
    write_submission,
)


def g(*rows):
    return np.array(rows, dtype=np.uint8)


TASKS = [
    Task("a", (Pair(g([1]), g([2])),), (g([1]),), (g([2]),)),
    Task("b", (Pair(g([1]), g([2])),), (g([3]), g([4, 4])), (g([5]), g([6, 6]))),
]
GOOD = {"a": [{"attempt_1": [[2]], "attempt_2": [[0]]}],
        "b": [{"attempt_1": [[0]], "attempt_2": [[5]]}, {"attempt_1": [[6, 6]], "attempt_2": [[0]]}]}


@pytest.mark.parametrize(
    "mutate, problem",
    [
        pytest.param(lambda s: s.pop("a"), "missing task a", id="missing_task"),
        pytest.param(lambda s: s.update(z=[]), "extra task z not in the challenges", id="extra_task"),
        pytest.param(lambda s: s["b"].pop(), "task b: 1 entries for 2 test inputs", id="wrong_count"),
        pytest.param(lambda s: s["a"][0].pop("attempt_2"), "task a test 0: keys ['attempt_1'] must be exactly",
                     id="missing_attempt"),
        pytest.param(lambda s: s["a"][0].update(attempt_1=[[1, 2], [3]]), "task a test 0 attempt_1 is ragged",
                     id="ragged"),
        pytest.param(lambda s: s["a"][0].update(attempt_1=[[10]]), "task a test 0 attempt_1 cell (0,0) is 10",
                     id="value"),
        pytest.param(lambda s: s["a"][0].update(attempt_1=[]), "task a test 0 attempt_1 has 0 rows", id="empty"),
        pytest.param(lambda s: s["a"][0].update(attempt_1=[[True]]), "cell (0,0) is True", id="bool"),
        pytest.param(lambda s: s.update(a={"attempt_1": [[1]]}), "task a: must be a list", id="not_list"),
    ],
)
def test_validator_names_each_problem(mutate, problem):
    sub = json.loads(json.dumps(GOOD))
    mutate(sub)
    problems = validate_submission(sub, TASKS)
    assert len(problems) == 1 and problem in problems[0], problems


def test_valid_and_challenges_dict():
    assert validate_submission(GOOD, TASKS) == []
    challenges = {t.id: t.to_json() for t in TASKS}
    assert validate_submission(GOOD, challenges) == []
    assert validate_submission([], TASKS) == ["submission must be a JSON object mapping task ids, got list"]


def test_score_hand_made():
    report = score(GOOD, TASKS)
    assert report.per_task == {"a": 1.0, "b": 1.0} and report.total == 1.0
    half = json.loads(json.dumps(GOOD))
    half["b"][1] = {"attempt_1": [[6]], "attempt_2": "garbage"}
    del half["a"]
    report = score(half, TASKS)
    assert report.per_task == {"a": 0.0, "b": 0.5} and report.total == 0.25
    assert (report.test_inputs, report.test_inputs_correct) == (3, 1)
    assert json.loads(json.dumps(report.to_json()))["total"] == 0.25


def test_placeholder_submission_is_valid_and_written_atomically(tmp_path):
    sub = placeholder_submission(TASKS)
    assert validate_submission(sub, TASKS) == []
    assert sub["b"][1] == {"attempt_1": [[4, 4]], "attempt_2": [[0]]}
    path = write_submission(sub, tmp_path / "out" / "submission.json")
    assert json.loads(path.read_text()) == sub
    assert [p.name for p in path.parent.iterdir()] == ["submission.json"]  # no temp file left behind


def test_real_evaluation_set_scores_one_then_zero():
    tasks = load_dataset("arc-agi-1/evaluation").tasks
    assert len(tasks) == 400
    right = {t.id: entry([[out, np.zeros((1, 1), np.uint8)] for out in t.test_outputs]) for t in tasks}
    assert validate_submission(right, tasks) == []
    assert score(right, tasks).total == 1.0
    solutions = {t.id: [o.tolist() for o in t.test_outputs] for t in tasks}
    assert score(right, solutions).total == 1.0
    wrong = {t.id: entry([[(out + 1) % 10, x] for out, x in zip(t.test_outputs, t.test_inputs)]) for t in tasks}
    assert validate_submission(wrong, tasks) == []
    assert score(wrong, tasks).total == 0.0


@pytest.mark.parametrize(
    "hits, total, fraction",
    [
        ({"a": True, "b": (False, False)}, 0.5, 1 / 3),  # task a alone weighs as much as both of b's outputs
        ({"a": False, "b": (True, True)}, 0.5, 2 / 3),
        ({"a": True, "b": (True, False)}, 0.75, 2 / 3),
    ],
)
def test_score_gives_the_task_mean_and_the_test_output_fraction(hits, total, fraction):
    a_truth, (b0, b1) = [[2]], ([[5]], [[6, 6]])
    sub = {
        "a": [{"attempt_1": a_truth if hits["a"] else [[0]], "attempt_2": [[0]]}],
        "b": [{"attempt_1": b0 if hits["b"][0] else [[0]], "attempt_2": [[0]]},
              {"attempt_1": b1 if hits["b"][1] else [[0]], "attempt_2": [[0]]}],
    }
    report = score(sub, TASKS)
    assert report.total == pytest.approx(total) and report.test_fraction == pytest.approx(fraction)
    assert report.to_json()["test_fraction"] == pytest.approx(fraction)
    line = report.summary()
    assert f"total: {total:.4f}" in line and f"test outputs solved: {report.test_inputs_correct}/3" in line


def test_score_command_prints_both_numbers(tmp_path):
    from typer.testing import CliRunner

    from solve.cli.app import app

    tasks = load_dataset("arc-agi-1/evaluation").tasks[:2]
    sub = {t.id: [{"attempt_1": y.tolist(), "attempt_2": [[0]]} for y in t.test_outputs] for t in tasks}
    sub[tasks[1].id] = [{"attempt_1": [[0]], "attempt_2": [[0]]} for _ in tasks[1].test_outputs]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sub))
    res = CliRunner().invoke(app, ["score", "--submission", str(path), "--dataset", "arc-agi-1/evaluation"])
    assert res.exit_code == 0, res.output
    n0, n = len(tasks[0].test_outputs), sum(len(t.test_outputs) for t in tasks)
    assert "total: 0.5000 (mean over 2 tasks)" in res.output
    assert f"test outputs solved: {n0}/{n}" in res.output
