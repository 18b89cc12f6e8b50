"""A run directory: the one place a run's results live, valid and resumable at every moment.

    DIR/submission.json   Kaggle format; placeholders for every task from the start, updated atomically
    DIR/results.jsonl     one JSON line per finished task (ok or failed, with stage and traceback)
    DIR/config.yaml       the resolved config plus versions and git commit
    DIR/report.md         written at the end: score (when solutions are known), time per stage, counts

Running again with the same DIR skips tasks already in results.jsonl.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from augment.tasks import Task
from solve.select.submission import placeholder_submission, write_submission


def environment_info() -> dict[str, Any]:
    """Versions and git commit, so a results file says what produced it."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("arc-ttt", "torch", "transformers", "peft", "deepspeed", "numpy"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        info["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def read_results(path: Path) -> list[dict[str, Any]]:
    """Finished task records; a torn last line (a crash mid-write) is ignored, earlier lines are kept."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only a partial final line can be torn: appends are single writes + fsync
    return records


def never_started(rec: dict[str, Any]) -> bool:
    """A record of a task skipped before its first stage because the global deadline was too close."""
    return rec.get("status") == "deadline" and not rec.get("stages") and (rec.get("error") or {}).get("stage") == "budget"


@dataclass
class RunDir:
    path: Path
    tasks: Sequence[Task]
    submission: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path, tasks: Sequence[Task], config: dict[str, Any] | None) -> RunDir:
        """Create or resume DIR: keep finished tasks, write a complete, valid submission now.

        config=None leaves DIR/config.yaml as it is (the Kaggle kernel opens DIR to write placeholders
        before its config is loaded, and again to finalize, and must not clobber run_tasks' record)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, tasks)
        run.submission = placeholder_submission(tasks)
        for rec in read_results(run.results_path):
            if rec.get("task_id") in run.submission:
                run.done[rec["task_id"]] = rec
                run.submission[rec["task_id"]] = rec["attempts"]
        # A task the global deadline never let start is recorded (placeholders, status 'deadline') but is
        # not finished: a resumed run, with time again, tries it. Its newer record replaces this one.
        for tid in [tid for tid, rec in run.done.items() if never_started(rec)]:
            del run.done[tid]
        if config is not None:
            cfg_text = yaml.safe_dump({"config": config, "environment": environment_info()}, sort_keys=False)
            (path / "config.yaml").write_text(cfg_text)
        run.write_submission()
        return run

    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def submission_path(self) -> Path:
        return self.path / "submission.json"

    def pending(self) -> list[Task]:
        return [t for t in self.tasks if t.id not in self.done]

    def write_submission(self) -> None:
        write_submission(self.submission, self.submission_path)

    def record(self, rec: dict[str, Any]) -> None:
        """Append one finished task, then update the submission (both durable before returning)."""
        line = json.dumps(rec) + "\n"
        with open(self.results_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.done[rec["task_id"]] = rec
        self.submission[rec["task_id"]] = rec["attempts"]
        self.write_submission()

