"""Kaggle submission files: build, write atomically, validate against the challenges, and score.

Format: `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...one per test input, in order]}`, grids
as lists of rows of ints 0..9. Score of a task = fraction of its test inputs where either attempt equals
the solution exactly; total = mean over the tasks of the solutions (Kaggle's metric). The report also
gives the fraction of all test outputs solved, which weighs a task by its number of test inputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from augment.tasks import Task, as_grid

ATTEMPT_KEYS = ("attempt_1", "attempt_2")
Submission = dict[str, list[dict[str, list[list[int]]]]]


def placeholder_grids(test_input: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """What fills attempts nothing better claimed: the test input itself, then [[0]], then [[1]].

    The test input is as good a blind guess as any (many outputs share its shape and most of its cells,
    though exact matches are rare); [[0]] is the conventional empty answer; [[1]] only breaks the tie
    when the test input is itself [[0]].
    """
    return [
        ("test_input", np.asarray(test_input, dtype=np.uint8)),
        ("zero_1x1", np.zeros((1, 1), np.uint8)),
        ("one_1x1", np.ones((1, 1), np.uint8)),
    ]


def entry(attempts_per_test: Sequence[Sequence[np.ndarray]]) -> list[dict[str, list[list[int]]]]:
    """One task's submission value from [[attempt_1, attempt_2], ...] per test input."""
    return [{k: np.asarray(g).astype(int).tolist() for k, g in zip(ATTEMPT_KEYS, pair)} for pair in attempts_per_test]


def placeholder_submission(tasks: Sequence[Task]) -> Submission:
    """A valid submission for `tasks` that uses placeholders everywhere (written first, improved later)."""
    return {
        t.id: entry([[g for _, g in placeholder_grids(x)[:2]] for x in t.test_inputs]) for t in tasks
    }


def write_submission(submission: Mapping[str, Any], path: str | Path) -> Path:
    """Write JSON atomically: a temp file in the same directory, fsync, os.replace, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(submission, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # fsync on a directory is unsupported on some file systems; durability is best effort there
    finally:
        os.close(fd)


def _test_counts(challenges: Mapping[str, Any] | Sequence[Task]) -> dict[str, int]:
    if isinstance(challenges, Mapping):
        return {tid: len(t["test"]) for tid, t in challenges.items()}
    return {t.id: len(t.test_inputs) for t in challenges}


def validate_submission(sub: Any, challenges: Mapping[str, Any] | Sequence[Task]) -> list[str]:
    """Every problem that would make Kaggle reject or misread `sub`; empty when it is valid."""
    if not isinstance(sub, dict):
        return [f"submission must be a JSON object mapping task ids, got {type(sub).__name__}"]
    counts = _test_counts(challenges)
    problems = [f"missing task {tid}" for tid in counts if tid not in sub]
    problems += [f"extra task {tid} not in the challenges" for tid in sub if tid not in counts]
    for tid, n in counts.items():
        if tid in sub:
            problems += _task_problems(tid, sub[tid], n)
    return problems


def _task_problems(tid: str, value: Any, n_tests: int) -> list[str]:
    if not isinstance(value, list):
        return [f"task {tid}: must be a list of attempt objects, got {type(value).__name__}"]
    if len(value) != n_tests:
        return [f"task {tid}: {len(value)} entries for {n_tests} test inputs"]
    problems = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(f"task {tid} test {i}: must be an object, got {type(item).__name__}")
            continue
        if set(item) != set(ATTEMPT_KEYS):
            problems.append(f"task {tid} test {i}: keys {sorted(item)} must be exactly {list(ATTEMPT_KEYS)}")
        for key in ATTEMPT_KEYS:
            if key in item:
                try:
                    as_grid(item[key], f"task {tid} test {i} {key}")
                except ValueError as e:
                    problems.append(str(e))
    return problems


@dataclass
class ScoreReport:
    total: float  # mean over tasks of the solutions
    per_task: dict[str, float] = field(default_factory=dict)
    tasks: int = 0
    test_inputs: int = 0
    test_inputs_correct: int = 0
    test_fraction: float = 0.0  # test_inputs_correct / test_inputs: each test output counts once

    def summary(self) -> str:
        """One line with both numbers: the mean over tasks and the fraction of test outputs solved."""
        return (
            f"total: {self.total:.4f} (mean over {self.tasks} tasks); test outputs solved: "
            f"{self.test_inputs_correct}/{self.test_inputs} ({self.test_fraction:.4f})"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score(submission: Mapping[str, Any], solutions: Mapping[str, Sequence[Any]] | Sequence[Task]) -> ScoreReport:
    """Kaggle's metric. `solutions`: {task_id: [grid, ...]} or Tasks with test outputs."""
    sols = _solutions(solutions)
    report = ScoreReport(total=0.0)
    for tid, expected in sols.items():
        got = submission.get(tid)
        hits = [_hit(got, i, grid) for i, grid in enumerate(expected)]
        report.per_task[tid] = sum(hits) / len(hits) if hits else 0.0
        report.test_inputs += len(hits)
        report.test_inputs_correct += sum(hits)
    report.tasks = len(sols)
    report.total = sum(report.per_task.values()) / len(sols) if sols else 0.0
    report.test_fraction = report.test_inputs_correct / report.test_inputs if report.test_inputs else 0.0
    return report


def _solutions(solutions: Mapping[str, Sequence[Any]] | Sequence[Task]) -> dict[str, list[np.ndarray]]:
    if isinstance(solutions, Mapping):
        return {tid: [as_grid(g, f"solution {tid}[{i}]") for i, g in enumerate(gs)] for tid, gs in solutions.items()}
    missing = [t.id for t in solutions if t.test_outputs is None]
    if missing:
        raise ValueError(f"tasks without test outputs cannot be scored: {', '.join(missing[:5])}")
    return {t.id: list(t.test_outputs) for t in solutions}


def _hit(task_value: Any, i: int, expected: np.ndarray) -> bool:
    if not isinstance(task_value, list) or i >= len(task_value) or not isinstance(task_value[i], dict):
        return False
    return any(_matches(task_value[i].get(key), expected) for key in ATTEMPT_KEYS)


def _matches(attempt: Any, expected: np.ndarray) -> bool:
    try:
        grid = as_grid(attempt)
    except ValueError:
        return False  # a malformed attempt scores nothing (validate_submission reports it)
    return np.array_equal(grid, expected)
