"""Sandbox throughput on real ARC tasks: program-runs/s, programs/s and per-program overhead.

Run: `python -m solve.sandbox.bench [--tasks N] [--dataset NAME]`; or call `run_benchmark()`.
Programs are simple and correct (flips, transposes, a numpy color map...), each run on every train and
test input of its task, as verification does.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from augment.tasks import load_dataset
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox

PROGRAMS = (
    "def transform(grid):\n    return grid\n",
    "def transform(grid):\n    return [row[::-1] for row in grid]\n",
    "def transform(grid):\n    return [list(r) for r in zip(*grid)]\n",
    "import numpy as np\ndef transform(grid):\n    return np.rot90(np.array(grid)).tolist()\n",
    "import numpy as np\ndef transform(grid):\n    a = np.array(grid)\n    return np.where(a == 0, 0, (a + 1) % 10)\n",
    "def transform(grid):\n    return grid[::-1]\n",
)


def run_benchmark(n_tasks: int = 40, dataset: str = "arc-agi-1/training", workers: tuple[int, ...] | None = None,
                  timeout_s: float = 2.0) -> dict:
    """Throughput for each worker count (default: 1 and all cores) plus the per-program overhead."""
    tasks = load_dataset(dataset).tasks[:n_tasks]
    jobs = [
        (f"{t.id}/{k}", src, [p.input for p in t.train] + list(t.test_inputs))
        for t in tasks for k, src in enumerate(PROGRAMS)
    ]
    runs = sum(len(grids) for _, _, grids in jobs)
    cores = os.cpu_count() or 1
    report: dict = {"tasks": len(tasks), "programs": len(jobs), "program_runs": runs, "cores": cores, "by_workers": {}}
    for n in workers or tuple(sorted({1, cores})):
        with Sandbox(SandboxConfig(workers=n, timeout_s=timeout_s)) as sb:
            sb.run_many(jobs[: 2 * n])  # warm up
            start = time.perf_counter()
            records = sb.run_many(jobs)
            wall = time.perf_counter() - start
            report["isolation"] = sb.isolation
        failed = sum(r.error is not None or any(g.error for g in r.results) for r in records)
        report["by_workers"][n] = {
            "seconds": round(wall, 3),
            "programs_per_s": round(len(jobs) / wall, 1),
            "program_runs_per_s": round(runs / wall, 1),
            "program_runs_per_s_per_worker": round(runs / wall / n, 1),
            "failed_programs": failed,
        }
    report["overhead_ms_per_program"] = _overhead_ms(timeout_s)
    return report


def _overhead_ms(timeout_s: float, n: int = 300) -> float:
    """Wall time per trivial program on one 1x1 grid with one worker: the sandbox's own cost."""
    grid = np.zeros((1, 1), np.uint8)
    with Sandbox(SandboxConfig(workers=1, timeout_s=timeout_s)) as sb:
        sb.run([("warm", PROGRAMS[0])], [grid])
        start = time.perf_counter()
        sb.run([(str(i), PROGRAMS[0]) for i in range(n)], [grid])
        return round((time.perf_counter() - start) / n * 1e3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--dataset", default="arc-agi-1/training")
    args = parser.parse_args()
    print(json.dumps(run_benchmark(args.tasks, args.dataset), indent=2))


if __name__ == "__main__":
    main()
