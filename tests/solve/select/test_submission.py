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
