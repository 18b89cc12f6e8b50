"""The same sweep with `--executor local` and `--executor ray` on this machine: wall time, the overhead per
task (wall time minus the tasks' own seconds, over the tasks), and the time to the first record.

    python bench/ray_executor.py [--out runs/bench-ray] [--tasks 00576224,2072aba6] [--param train.steps=1,2] [--set k=v ...]

Both run `arc-ttt sweep` as a user would (a fresh process each, the real smoke config and model). Ray gets
one actor of all this machine's cores (placement.cpus_per_worker), so each task runs with the same torch
threads as the local run and the difference is the executor's: starting a local Ray instance, an actor
process with its own imports and model load, and a round trip per task.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _records(exp: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(exp.glob("*/results.jsonl")) for line in f.read_text().splitlines()]


def _first_finish(exp: Path) -> float:
    events = [json.loads(line) for f in exp.glob("*/timeline.jsonl") for line in f.read_text().splitlines()]
    return min(e["wall"] for e in events if e["event"] == "finish")


def one(executor: str, out: Path, tasks: str, param: str, cores: int, sets: list[str]) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "solve.cli.app", "sweep", "--config", str(ROOT / "configs" / "smoke.yaml"), "--dataset",
           "arc-agi-1/evaluation", "--task-ids", tasks, "--param", param, "--out", str(out), "--no-progress",
           "--executor", executor, "--set", f"placement.cpus_per_worker={cores}", *(x for kv in sets for x in ("--set", kv))]
    if executor == "ray":
        cmd += ["--ray-address", "local"]
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    recs = _records(out)
    solved = sum(r["seconds"] for r in recs)
    return {"executor": executor, "tasks": len(recs), "wall_s": round(wall, 1), "task_seconds": round(solved, 1),
            "overhead_per_task_s": round((wall - solved) / len(recs), 1), "first_record_s": round(_first_finish(out) - start, 1),
            "statuses": sorted(r["status"] for r in recs), "scores": [r["score"] for r in recs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ray")
    ap.add_argument("--tasks", default="00576224,2072aba6")
    ap.add_argument("--param", default="train.steps=1,2")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override for both (e.g. model.source=random:tiny)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = [one(ex, args.out / ex, args.tasks, args.param, cores, args.sets) for ex in ("local", "ray")]
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
