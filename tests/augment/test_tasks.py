"""Task loading: the built-in datasets load cleanly; malformed input fails with a named reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from augment.tasks import (
    DATASETS,
    LoadIssue,
    LoadResult,
    Task,
    TaskError,
    UnloadableTask,
    as_grid,
    load_challenges,
    load_dataset,
    load_task_files,
    select,
    task_from_json,
)

EXPECTED_COUNTS = {
    "arc-agi-1/training": 400,
    "arc-agi-1/evaluation": 400,
    "arc-agi-2/training": 1000,
    "arc-agi-2/evaluation": 120,
}

GOOD = {
    "train": [
        {"input": [[0, 1], [2, 3]], "output": [[3, 2], [1, 0]]},
        {"input": [[4, 5, 6]], "output": [[6], [5], [4]]},
    ],
    "test": [{"input": [[7, 8], [9, 0]], "output": [[0, 9], [8, 7]]}],
}


def good() -> dict:
    return copy.deepcopy(GOOD)


# ---- built-in datasets ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets() -> dict[str, LoadResult]:
    return {name: load_dataset(name) for name in DATASETS}


def test_dataset_names_are_the_four_builtins():
    assert set(DATASETS) == set(EXPECTED_COUNTS)


@pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
def test_builtin_dataset_loads_every_task_with_zero_issues(datasets, name):
    result = datasets[name]
    assert result.issues == []
    assert len(result.tasks) == EXPECTED_COUNTS[name]
    ids = [t.id for t in result.tasks]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    for t in result.tasks:
        assert isinstance(t, Task) and len(t.train) >= 1 and len(t.test_inputs) >= 1
        assert t.test_outputs is not None, f"{name} {t.id}: no test outputs"
        assert len(t.test_outputs) == len(t.test_inputs)
        for g in [x for p in t.train for x in (p.input, p.output)] + list(t.test_inputs) + list(t.test_outputs):
            assert g.dtype == np.uint8 and g.ndim == 2
            assert 1 <= g.shape[0] <= 30 and 1 <= g.shape[1] <= 30
            assert int(g.max()) <= 9
        assert 1 <= t.max_side <= 30


def test_unknown_dataset_is_an_error():
    with pytest.raises(TaskError, match=r"arc-agi-3/training: unknown dataset; choose one of arc-agi-1/training"):
        load_dataset("arc-agi-3/training")


def test_task_round_trips_through_json(datasets):
    t = datasets["arc-agi-1/evaluation"].tasks[0]
    back = task_from_json(t.id, json.loads(json.dumps(t.to_json())), "roundtrip")
    assert back.id == t.id and len(back.train) == len(t.train)
    assert all(np.array_equal(a.input, b.input) and np.array_equal(a.output, b.output) for a, b in zip(back.train, t.train))
    assert all(np.array_equal(a, b) for a, b in zip(back.test_outputs, t.test_outputs))


# ---- malformed tasks -------------------------------------------------------------------------


def _with(path: tuple, value):
    """GOOD with the value at `path` (keys/indexes) replaced; value=KeyError deletes it."""
    data = good()
    node = data
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


BAD_TASKS = [
    # (id, data, expected fragment of the problem)
    ("ragged-rows", _with(("train", 0, "input"), [[0, 1], [2]]), "train[0].input is ragged: row 1 has 1 cells, row 0 has 2"),
    ("value-10", _with(("train", 1, "output"), [[10]]), "train[1].output cell (0,0) is 10; must be an int 0..9"),
    ("value-negative", _with(("test", 0, "input"), [[0, -1]]), "test[0].input cell (0,1) is -1; must be an int 0..9"),
    ("value-float", _with(("train", 0, "input"), [[0, 1.0], [2, 3]]), "train[0].input cell (0,1) is 1.0; must be an int 0..9"),
    ("value-bool", _with(("train", 0, "output"), [[True, 1], [2, 3]]), "train[0].output cell (0,0) is True; must be an int 0..9"),
    ("value-string", _with(("test", 0, "output"), [["3", 0], [0, 0]]), "test[0].output cell (0,0) is '3'; must be an int 0..9"),
    ("value-null", _with(("train", 0, "input"), [[None]]), "train[0].input cell (0,0) is None"),
    ("grid-0x0", _with(("train", 0, "input"), []), "train[0].input has 0 rows; must be 1..30"),
    ("grid-1x0", _with(("train", 0, "input"), [[]]), "train[0].input has 0 columns; must be 1..30"),
    ("grid-31-rows", _with(("train", 0, "output"), [[0]] * 31), "train[0].output has 31 rows; must be 1..30"),
    ("grid-31-cols", _with(("test", 0, "input"), [[0] * 31]), "test[0].input has 31 columns; must be 1..30"),
    ("grid-not-list", _with(("train", 0, "input"), "0123"), "train[0].input is str, not a list of rows"),
    ("row-not-list", _with(("train", 0, "input"), [0, 1]), "train[0].input row 0 is int, not a list"),
    ("missing-train", _with(("train",), KeyError), "missing key 'train'"),
    ("missing-test", _with(("test",), KeyError), "missing key 'test'"),
    ("empty-train", _with(("train",), []), "'train' must be a non-empty list"),
    ("train-not-list", _with(("train",), {"input": [[0]]}), "'train' must be a non-empty list"),
    ("missing-train-input", _with(("train", 1, "input"), KeyError), "train[1] must have 'input' and 'output'"),
    ("missing-train-output", _with(("train", 0, "output"), KeyError), "train[0] must have 'input' and 'output'"),
    ("missing-test-input", _with(("test", 0, "input"), KeyError), "test[0] must have 'input'"),
    ("task-not-object", [GOOD["train"]], "expected an object with 'train' and 'test', got list"),
    (
        "test-outputs-partial",
        _with(("test",), [{"input": [[0]], "output": [[1]]}, {"input": [[1]]}]),
        "1 test outputs for 2 test inputs",
    ),
]


@pytest.mark.parametrize("data,problem", [pytest.param(d, p, id=i) for i, d, p in BAD_TASKS])
def test_malformed_task_is_rejected_with_a_reason(data, problem):
    with pytest.raises(TaskError) as info:
        task_from_json("abc123", data, "some/file.json")
    err = info.value
    assert err.source == "some/file.json" and err.task_id == "abc123"
    assert problem in err.problem
    assert str(err).startswith("some/file.json: task abc123: ")
    assert problem in str(err)


SOLUTION_CASES = [
    ("too-many-solutions", [[[0]], [[1]]], "solutions give 2 grids for 1 test inputs"),
    ("too-few-solutions", [], "solutions give 0 grids for 1 test inputs"),
    ("solutions-not-list", {"a": 1}, "solutions give dict grids for 1 test inputs"),
    ("bad-solution-grid", [[[0, 11]]], "solution[0] cell (0,1) is 11"),
]


@pytest.mark.parametrize("solutions,problem", [pytest.param(s, p, id=i) for i, s, p in SOLUTION_CASES])
def test_solutions_must_match_test_inputs(solutions, problem):
    with pytest.raises(TaskError, match=r"^f\.json: task t1: ") as info:
        task_from_json("t1", good(), "f.json", solutions)
    assert problem in info.value.problem


def test_solutions_override_inline_outputs():
    t = task_from_json("t1", good(), "f.json", [[[5, 5]]])
    assert len(t.test_outputs) == 1 and t.test_outputs[0].tolist() == [[5, 5]]


def test_valid_task_fields():
    t = task_from_json("t1", good(), "f.json")
    assert t.id == "t1" and len(t.train) == 2 and len(t.test_inputs) == 1
    assert t.train[1].output.shape == (3, 1) and t.train[1].output.dtype == np.uint8
    assert t.test_outputs[0].tolist() == [[0, 9], [8, 7]]
    assert t.max_side == 3
    no_out = _with(("test", 0, "output"), KeyError)
    assert task_from_json("t2", no_out, "f.json").test_outputs is None
    assert task_from_json("t2", no_out, "f.json").to_json() == no_out
    assert task_from_json("t1", good(), "f.json").to_json() == GOOD


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(np.zeros((2, 3), np.int64), id="int64-array"),
        pytest.param(np.ones((30, 30), np.uint8), id="30x30-array"),
        pytest.param(((1, 2), (3, 4)), id="tuples"),
    ],
)
def test_as_grid_accepts(value):
    g = as_grid(value)
    assert g.dtype == np.uint8 and g.tolist() == np.asarray(value).tolist()


@pytest.mark.parametrize(
    "value,problem",
    [
        pytest.param(np.zeros((2, 2), np.float64), "cell (0,0) is 0.0", id="float-array"),
        pytest.param(np.zeros((2, 2), bool), "cell (0,0) is False", id="bool-array"),
        pytest.param(np.zeros(3, np.uint8), "row 0 is int, not a list", id="1d-array"),
        pytest.param(np.zeros((31, 1), np.uint8), "has 31 rows", id="31-row-array"),
        pytest.param(7, "grid is int, not a list of rows", id="scalar"),
    ],
)
def test_as_grid_rejects(value, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        as_grid(value)


# ---- files -----------------------------------------------------------------------------------


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _bad_task() -> dict:
    return _with(("train", 0, "input"), [[0, 1], [2]])


def test_challenges_file_skips_bad_task_and_keeps_the_rest(tmp_path):
    path = _write(tmp_path / "challenges.json", {"good1": good(), "bad": _bad_task(), "good2": good()})
    result = load_challenges(path)
    assert [t.id for t in result.tasks] == ["good1", "good2"]
    assert len(result.issues) == 1
    issue = result.issues[0]
    assert isinstance(issue, LoadIssue)
    assert issue.source == str(path) and issue.task_id == "bad"
    assert "train[0].input is ragged" in issue.problem


# Every kind of broken task a challenges file can hold: (id, task data, test entries kept, inputs that parse).
UNLOADABLE = [
    ("ragged-train", _with(("train", 0, "input"), [[0, 1], [2]]), 1, 1),
    ("ragged-test", _with(("test",), [{"input": [[1, 2], [3]]}, {"input": [[4]]}]), 2, 1),
    ("missing-test", _with(("test",), KeyError), 1, 0),
    ("empty-test", _with(("test",), []), 1, 0),
    ("test-not-list", _with(("test",), {"input": [[1]]}), 1, 0),
    ("test-entry-not-object", _with(("test",), [[[1]], {"input": [[2]]}]), 2, 1),
    ("test-entry-no-input", _with(("test",), [{"output": [[1]]}]), 1, 0),
    ("task-not-object", [GOOD["train"]], 1, 0),
    ("task-null", None, 1, 0),
    ("color-10", _with(("train", 1, "output"), [[10]]), 1, 1),
    ("train-31x31", _with(("train", 0, "input"), [[0] * 31] * 31), 1, 1),
    ("test-31x31", _with(("test", 0, "input"), [[0] * 31] * 31), 1, 0),
    ("empty-train", _with(("train",), []), 1, 1),
    ("train-not-list", _with(("train",), "x"), 1, 1),
]


def test_unloadable_tasks_keep_their_ids_and_readable_test_inputs(tmp_path):
    """A task that does not load still has an id a submission must answer: the loader keeps the test
    inputs it can read (which ones, and how many entries), and with_unloadable() keeps every id in order."""
    data = {"good1": good()} | {tid: d for tid, d, _, _ in UNLOADABLE} | {"good2": good()}
    path = _write(tmp_path / "challenges.json", data)
    result = load_challenges(path)
    assert [t.id for t in result.tasks] == ["good1", "good2"]
    assert result.ids == list(data)
    issues = {i.task_id: i for i in result.issues}
    every = result.with_unloadable()
    assert [t.id for t in every] == list(data)
    by_id = {t.id: t for t in every}
    for tid, raw, entries, parsed in UNLOADABLE:
        issue, stand_in = issues[tid], by_id[tid]
        assert issue.tests_read == parsed, tid
        assert isinstance(stand_in, UnloadableTask) and stand_in.problem == issue.problem and stand_in.source == str(path)
        assert len(stand_in.test_inputs) == entries and stand_in.tests_read == parsed and stand_in.train == ()
        for i, g in enumerate(stand_in.test_inputs):
            expect = raw["test"][i]["input"] if issue.test_inputs and issue.test_inputs[i] is not None else [[0]]
            assert g.tolist() == expect, (tid, i)
    assert by_id["ragged-test"].test_inputs[1].tolist() == [[4]]  # the good input of a half-broken test list


def test_demo_selection_never_picks_an_unloadable_task(tmp_path):
    from augment.tasks import small_tasks

    path = _write(tmp_path / "ch.json", {"a-bad": _bad_task(), "b-good": good()})
    assert [t.id for t in small_tasks(load_challenges(path).with_unloadable(), 5)] == ["b-good"]


def test_challenges_file_strict_raises(tmp_path):
    path = _write(tmp_path / "challenges.json", {"good1": good(), "bad": _bad_task(), "good2": good()})
    with pytest.raises(TaskError) as info:
        load_challenges(path, strict=True)
    assert info.value.task_id == "bad"
    assert str(path) in str(info.value) and "task bad" in str(info.value) and "ragged" in str(info.value)


def test_challenges_with_solutions_file(tmp_path):
    challenges = {"a": _with(("test", 0, "output"), KeyError), "b": good(), "c": good()}
    ch = _write(tmp_path / "ch.json", challenges)
    sol = _write(tmp_path / "sol.json", {"a": [[[1, 2]]], "c": [[[1]], [[2]]]})
    result = load_challenges(ch, sol)
    assert [t.id for t in result.tasks] == ["a", "b"]
    assert result.tasks[0].test_outputs[0].tolist() == [[1, 2]]
    assert result.tasks[1].test_outputs[0].tolist() == [[0, 9], [8, 7]]  # no solution given: inline kept
    [issue] = result.issues
    assert issue.task_id == "c" and issue.source == str(ch)
    assert issue.problem == "solutions give 2 grids for 1 test inputs"


def test_challenges_without_outputs_have_none(tmp_path):
    ch = _write(tmp_path / "ch.json", {"a": _with(("test", 0, "output"), KeyError)})
    [t] = load_challenges(ch).tasks
    assert t.test_outputs is None


FILE_ERRORS = [
    # (id, how to make the path, loader, expected fragment)
    ("invalid-json", lambda d: _text(d / "x.json", "{not json"), load_challenges, "invalid JSON"),
    ("truncated-json", lambda d: _text(d / "x.json", json.dumps({"a": GOOD})[:-5]), load_challenges, "invalid JSON"),
    ("empty-file", lambda d: _text(d / "x.json", ""), load_challenges, "invalid JSON"),
    ("not-utf8", lambda d: _bytes(d / "x.json", b"\xff\xfe{\x00"), load_challenges, "invalid JSON"),
    ("missing-file", lambda d: d / "nope.json", load_challenges, "file not found"),
    ("challenges-not-object", lambda d: _write(d / "x.json", [GOOD]), load_challenges, "must map task ids to tasks"),
    ("empty-directory", lambda d: d, load_task_files, "no *.json task files found"),
]


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,loader,problem", [pytest.param(m, l, p, id=i) for i, m, l, p in FILE_ERRORS])
def test_file_errors_name_the_file_and_problem(tmp_path, make, loader, problem):
    path = make(tmp_path)
    with pytest.raises(TaskError) as info:
        loader(path)
    assert info.value.source == str(path)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{path}: ")


def test_bad_solutions_file_names_it(tmp_path):
    ch = _write(tmp_path / "ch.json", {"a": good()})
    with pytest.raises(TaskError, match="sol.json: file not found"):
        load_challenges(ch, tmp_path / "sol.json")
    sol = _write(tmp_path / "sol2.json", [[[[0]]]])
    with pytest.raises(TaskError, match="sol2.json: a solutions file must map task ids"):
        load_challenges(ch, sol)


def test_single_task_file(tmp_path):
    path = _write(tmp_path / "00d62c1b.json", good())
    result = load_task_files(path)
    assert result.issues == [] and [t.id for t in result.tasks] == ["00d62c1b"]
    assert result.tasks[0].train[0].input.tolist() == [[0, 1], [2, 3]]


def test_single_missing_task_file_is_reported(tmp_path):
    path = tmp_path / "gone.json"
    result = load_task_files(path)
    assert result.tasks == []
    [issue] = result.issues
    assert issue.source == str(path) and issue.task_id == "gone" and issue.problem == "file not found"
    with pytest.raises(TaskError, match="gone.json: file not found"):
        load_task_files(path, strict=True)


def test_task_directory_skips_bad_files_and_keeps_the_rest(tmp_path):
    _write(tmp_path / "b_good.json", good())
    _write(tmp_path / "a_good.json", good())
    _write(tmp_path / "c_bad.json", _with(("train", 0, "output"), [[0] * 31]))
    _text(tmp_path / "d_broken.json", "[1, 2")
    _bytes(tmp_path / "e_binary.json", b"\x89PNG\r\n\x1a\n\xff")
    _text(tmp_path / "notes.txt", "not a task")  # ignored: not *.json
    result = load_task_files(tmp_path)
    assert [t.id for t in result.tasks] == ["a_good", "b_good"]
    by_id = {i.task_id: i for i in result.issues}
    assert set(by_id) == {"c_bad", "d_broken", "e_binary"}
    assert by_id["c_bad"].source == str(tmp_path / "c_bad.json")
    assert "train[0].output has 31 columns" in by_id["c_bad"].problem
    assert by_id["d_broken"].source == str(tmp_path / "d_broken.json")
    assert "invalid JSON" in by_id["d_broken"].problem
    assert "invalid JSON" in by_id["e_binary"].problem
    with pytest.raises(TaskError, match=r"c_bad\.json: task c_bad: train\[0\]\.output has 31 columns"):
        load_task_files(tmp_path, strict=True)


# ---- select ----------------------------------------------------------------------------------


@pytest.fixture
def five() -> list[Task]:
    return [task_from_json(f"t{i}", good(), "mem") for i in range(5)]


def test_select_by_ids_keeps_given_order(five):
    assert [t.id for t in select(five, ["t3", "t0"])] == ["t3", "t0"]


def test_select_limit(five):
    assert [t.id for t in select(five, limit=2)] == ["t0", "t1"]
    assert [t.id for t in select(five, limit=0)] == []
    assert [t.id for t in select(five, limit=99)] == [t.id for t in five]
    assert [t.id for t in select(five)] == [t.id for t in five]
    assert [t.id for t in select(five, ["t4", "t2", "t1"], limit=2)] == ["t4", "t2"]


def test_select_returns_a_new_list(five):
    out = select(five)
    assert out == five and out is not five


def test_select_unknown_ids_is_an_error(five):
    with pytest.raises(TaskError) as info:
        select(five, ["t1", "zz", "yy"])
    assert info.value.task_id == "zz,yy"
    assert str(info.value) == "task selection: task zz,yy: no such task id in the loaded tasks"


def test_select_on_a_dataset(datasets):
    tasks = datasets["arc-agi-2/evaluation"].tasks
    ids = [tasks[5].id, tasks[0].id]
    assert [t.id for t in select(tasks, ids)] == ids
