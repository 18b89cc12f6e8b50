"""A Kaggle dress rehearsal on this machine: a fake /kaggle tree in a temp dir, the real entry point
(`python -m solve.kernel.main`, in a subprocess like the notebook runs it), a tiny deadline, then
the checks that matter on Kaggle: is the submission complete and valid, was the deadline honored,
how did the planner's plan compare with what happened.

    ROOT/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json   N ARC-AGI-2 evaluation tasks, no outputs
    ROOT/kaggle/input/arc-ttt-model/{model,tokenizer}/              the model in the Kaggle dataset layout
    ROOT/kaggle/working/                                            run dir = submission.json lives here
    ROOT/solutions.json                                             outside the input, for scoring only

It rehearses the mechanics (paths, offline model layout, budget, submission), not GPU speed: use a
CPU-sized config (configs/kaggle-rehearsal.yaml).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

COMPETITION = "arc-prize-2025"
CHALLENGES_NAME = "arc-agi_test_challenges.json"
MODEL_DATASET = "arc-ttt-model"


@dataclass(frozen=True)
class FakeKaggle:
    root: Path

    @property
    def input(self) -> Path:
        return self.root / "kaggle" / "input"

    @property
    def challenges(self) -> Path:
        return self.input / COMPETITION / CHALLENGES_NAME

    @property
    def model(self) -> Path:
        return self.input / MODEL_DATASET

    @property
    def working(self) -> Path:
        return self.root / "kaggle" / "working"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions.json"


def rehearsal_tasks(n: int, dataset: str = "arc-agi-2/evaluation") -> list[Any]:
    """The n smallest tasks (by the planner's cost) of `dataset`: CPU-fast, still real ARC-AGI-2 tasks."""
    from augment.tasks import load_dataset
    from solve.kernel.main import smallest_tasks

    return smallest_tasks(load_dataset(dataset).tasks, n)


def build_fake_kaggle(root: str | Path, tasks: Sequence[Any], model_source: str, link_model: bool = True) -> FakeKaggle:
    from solve.kernel.export_model import export_model

    fake = FakeKaggle(Path(root))
    fake.challenges.parent.mkdir(parents=True, exist_ok=True)
    fake.working.mkdir(parents=True, exist_ok=True)
    challenges = {t.id: {k: v for k, v in t.to_json().items()} for t in tasks}
    for t in challenges.values():
        for item in t["test"]:
            item.pop("output", None)  # Kaggle's test file has no outputs
    fake.challenges.write_text(json.dumps(challenges))
    fake.solutions.write_text(json.dumps({t.id: [g.tolist() for g in t.test_outputs] for t in tasks if t.test_outputs}))
    export_model(model_source, fake.model, link=link_model)
    return fake


@dataclass
class Rehearsal:
    fake: FakeKaggle
    rc: int
    wall_s: float
    problems: list[str]  # validate_submission of the final submission; empty = valid and complete
    summary: dict[str, Any]  # kaggle_timeline.finish_summary
    timeline: str
    score: float | None
    done: int
    tasks: int
    output: str = ""
    overrun_s: float | None = None  # actual end - deadline (<= 0: honored)
    notes: list[str] = field(default_factory=list)


def kernel_argv(fake: FakeKaggle, config: Path, deadline_s: float, margin_s: float, overrides: Sequence[str],
                extra: Sequence[str] = ()) -> list[str]:
    return [
        "--challenges", str(fake.challenges), "--working", str(fake.working), "--config", str(config),
        "--budget-s", str(deadline_s + margin_s), "--margin-s", str(margin_s),
        "--set", f"model.source={fake.model}", *[a for o in overrides for a in ("--set", o)], *extra,
    ]


def run_kernel(argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """The entry point as the notebook runs it: a fresh Python process."""
    import os

    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "solve.kernel.main", *argv], capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr, time.time() - t0


def check(fake: FakeKaggle, rc: int, output: str, wall_s: float) -> Rehearsal:
    """What Kaggle would see: the submission in working/, its validity, the deadline, the score."""
    from augment.tasks import load_challenges
    from solve.kernel.timeline import finish_summary, load_spans, read_kernel, timeline_text
    from solve.pipeline.rundir import read_results
    from solve.select.submission import score, validate_submission

    tasks = load_challenges(fake.challenges).with_unloadable()  # every id must be answered, even one that does not load
    sub_path = fake.working / "submission.json"
    sub = json.loads(sub_path.read_text()) if sub_path.is_file() else None
    problems = validate_submission(sub, tasks) if sub is not None else [f"{sub_path} not found"]
    spans, kernel = load_spans(fake.working), read_kernel(fake.working)
    summary = finish_summary(spans, kernel)
    sols = json.loads(fake.solutions.read_text())
    total = score(sub, sols).total if sub is not None and sols else None
    overrun = None
    if kernel:  # the later of the last task's end and the kernel's own exit
        ends = [e for e in (summary["actual_end"], (kernel.get("runs") or [{}])[-1].get("ended_at")) if e is not None]
        overrun = max(ends) - kernel["deadline_at"] if ends else None
    done = len({r["task_id"] for r in read_results(fake.working / "results.jsonl")})
    return Rehearsal(fake, rc, wall_s, problems, summary, timeline_text(spans, kernel), total, done, len(tasks), output, overrun)


def rehearse(root: str | Path, n_tasks: int, deadline_s: float, config: Path, model_source: str = "smollm2-135m",
             overrides: Sequence[str] = (), margin_s: float = 0.0, grace_s: float = 60.0, extra: Sequence[str] = ()) -> Rehearsal:
    """Build the fake tree, run the kernel once, check the result.

    margin_s=0 makes the deadline exactly `deadline_s` after kernel start; the watchdog waits `grace_s`
    more, so an overrun shows up as a measured overrun rather than being hidden by a hard stop."""
    fake = build_fake_kaggle(root, rehearsal_tasks(n_tasks), model_source)
    argv = kernel_argv(fake, config, deadline_s, margin_s, overrides, ["--hard-stop-s", str(grace_s), "--min-start-s", "5", *extra])
    started = time.time()
    rc, output, wall = run_kernel(argv, timeout_s=deadline_s + grace_s + 120, env={"ARC_TTT_KERNEL_START": repr(started)})
    return check(fake, rc, output, wall)


def report_text(r: Rehearsal) -> str:
    lines = [r.timeline, ""]
    k = r.summary
    if "started_at" in k:
        rel = lambda x: "-" if x is None else f"{x - k['started_at']:.1f}s"  # noqa: E731
        lines.append(f"deadline {rel(k['deadline_at'])}; planner's latest planned end {rel(k['planned_end'])}; actual end {rel(k['actual_end'])}")
    lines.append(f"kernel exit code {r.rc}, wall {r.wall_s:.1f}s; {r.done}/{r.tasks} task(s) with a result")
    lines.append("submission: " + ("complete and valid" if not r.problems else f"{len(r.problems)} problem(s): {r.problems[:3]}"))
    if r.overrun_s is not None:
        lines.append(f"deadline {'honored' if r.overrun_s <= 0 else 'MISSED'}: the run ended {abs(r.overrun_s):.1f}s {'before' if r.overrun_s <= 0 else 'after'} it")
    if r.score is not None:
        lines.append(f"score on the rehearsal tasks: {r.score:.4f}")
    return "\n".join(lines)


def processes_with_env(key: str, value: str) -> list[int]:
    """Pids of this user's live processes whose environment has key=value: what a rehearsal (run with a
    unique marker in its environment) left running after the kernel ended. Zombies do not count."""
    needle = f"{key}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except (OSError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return found
