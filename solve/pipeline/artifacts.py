"""What the model produced for one task, on disk: `DIR/tasks/<task_id>.json` (`run.save_candidates`).

The task record (results.jsonl) keeps counts; this file keeps the things themselves, so that a run can
be read after the fact (`arc-ttt show DIR TASK_ID`):
  - `task`: the task in ARC JSON (test outputs included when known: the truth to compare with);
  - `programs`: every sampled program text, in sampling order: its view, the raw text, the extracted
    source (None when no program could be extracted), and after verification its id, train accuracy
    and error;
  - `grids`: every direct grid prediction: test index, view, raw text (the view's frame), the parsed
    grid mapped back to the task's frame (or the parse error);
  - `candidates`: per test input, the distinct grids, best first, each with its product-of-experts
    score, its log-probability under every scoring view and the views that predicted it;
  - `attempts`, `reasons`, `status`, `score`: the choice, as in the record;
  - `rounds` (only with test-time search, `solve.rounds` > 0): per round, the record's counts plus every
    program it added (id, origin "sample" / "refine" / "crossover", the ids of the programs shown to
    write it) and the training losses. The programs themselves are in `programs` with their ids.

Size: texts and sources are cut at `MAX_TEXT_CHARS`, lists at `MAX_ITEMS`; a file still over
`MAX_FILE_BYTES` loses its raw texts, then its list tails. `truncated` says what was cut. The file is
written atomically (temp file + rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from augment.tasks import Task

TASKS_DIR = "tasks"  # under the run directory
MAX_TEXT_CHARS = 4000
MAX_ITEMS = 512
MAX_FILE_BYTES = 4_000_000


def artifacts_path(run_dir: str | Path, task_id: str) -> Path:
    """Where a task's artifacts live; task ids are made file-name safe."""
    return Path(run_dir) / TASKS_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', task_id)}.json"


def _grid(g: np.ndarray | None) -> list[list[int]] | None:
    return None if g is None else np.asarray(g).astype(int).tolist()


def _cut(text: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters]"


def program_entries(sampled: Sequence[tuple[Any, str, int | None]], programs: Sequence[tuple[Any, str]], results: Sequence[Any]) -> list[dict[str, Any]]:
    """One entry per sampled text. `sampled`: (view, text, index into `programs` or None when nothing
    was extracted); program i has id f"p{i}" (as verification names it); `results`: ProgramResults,
    each standing for its own id and its duplicates'."""
    by_id = {pid: r for r in results for pid in (r.program_id, *r.duplicate_ids)}
    out = []
    for view, text, index in sampled:
        entry: dict[str, Any] = {"view": view.name, "text": _cut(text), "source": None, "id": None}
        if index is not None:
            pid = f"p{index}"
            entry.update(id=pid, source=_cut(programs[index][1]))
            r = by_id.get(pid)
            if r is not None:
                entry.update(
                    train_correct=r.train_correct, train_total=r.train_total, train_accuracy=round(r.train_accuracy, 4),
                    verified=r.verified, error=r.program_error, errors=dict(r.errors),
                    duplicate_of=None if r.program_id == pid else r.program_id,
                    test_outputs=[_grid(g) for g in r.test_outputs],
                )
        out.append(entry)
    return out


def dsl_entries(results: Sequence[Any], info: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per DSL search program (ProgramResults of origin "dsl"), shaped like `program_entries`'
    with `origin`, `kind` (solution or near_miss) and `depth` from `info` (by program id)."""
    return [
        {
            "view": r.view_name, "text": None, "source": _cut(r.source), "id": r.program_id, "origin": "dsl",
            **info.get(r.program_id, {}),
            "train_correct": r.train_correct, "train_total": r.train_total, "train_accuracy": round(r.train_accuracy, 4),
            "verified": r.verified, "error": r.program_error, "errors": dict(r.errors), "duplicate_of": None,
            "test_outputs": [_grid(g) for g in r.test_outputs],
        }
        for r in results
    ]


def grid_entries(guesses: Sequence[Any]) -> list[dict[str, Any]]:
    """One entry per direct grid prediction (ttt.decoding.sample.GridGuess)."""
    return [
        {"test_index": g.test_index, "view": g.view.name, "text": _cut(g.text), "grid": _grid(g.grid), "error": g.error,
         "logprob": None if g.logprob is None else round(g.logprob, 4)}
        for g in guesses
    ]


def candidate_entries(candidates: Sequence[Sequence[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Per test input, the scored distinct grids (best first) with numpy grids made JSON-able."""
    return [[{**c, "grid": _grid(c["grid"])} for c in per_test] for per_test in candidates]


def build_artifacts(
    task: Task,
    record: dict[str, Any],
    programs: list[dict[str, Any]],
    grids: list[dict[str, Any]],
    candidates: list[list[dict[str, Any]]],
    score_views: Sequence[str],
    rounds: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The artifacts document of one task, within the size limits (see the module doc)."""
    data: dict[str, Any] = {
        "task_id": task.id,
        "task": task.to_json(),
        "status": record.get("status"),
        "score": record.get("score"),
        "attempts": record.get("attempts"),
        "reasons": record.get("reasons"),
        "score_views": list(score_views),
        "programs": programs[:MAX_ITEMS],
        "grids": grids[:MAX_ITEMS],
        "candidates": [c[:MAX_ITEMS] for c in candidates],
        "truncated": [],
    }
    if rounds:
        data["rounds"] = list(rounds)
    if len(programs) > MAX_ITEMS or len(grids) > MAX_ITEMS or any(len(c) > MAX_ITEMS for c in candidates):
        data["truncated"].append(f"lists cut at {MAX_ITEMS} items")
    return _fit(data)


def _fit(data: dict[str, Any]) -> dict[str, Any]:
    """Shrink until the JSON is within MAX_FILE_BYTES: raw texts go first (sources stay), then list tails."""
    if len(json.dumps(data)) <= MAX_FILE_BYTES:
        return data
    for entry in data["programs"] + data["grids"]:
        entry["text"] = None
    data["truncated"].append("raw texts dropped to fit the file size limit")
    while len(json.dumps(data)) > MAX_FILE_BYTES and any(data[k] for k in ("programs", "grids", "candidates")):
        for key in ("programs", "grids"):
            data[key] = data[key][: len(data[key]) // 2]
        data["candidates"] = [c[: len(c) // 2] for c in data["candidates"]]
        data["truncated"].append("list tails dropped to fit the file size limit")
    return data


def write_artifacts(path: Path, data: dict[str, Any]) -> Path:
    """Write JSON atomically: a temp file in the same directory, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_artifacts(run_dir: str | Path, task_id: str) -> dict[str, Any] | None:
    """A task's artifacts, or None when the run saved none for it."""
    path = artifacts_path(run_dir, task_id)
    if not path.is_file():
        return None
    return json.loads(path.read_text())
