"""Does memory creep across tasks? One process (what a per_gpu worker is) solves the same probe task
first and last, with N other tasks in between, and compares the probe's peak memory both times, plus
the memory held between tasks (current RSS / GPU memory allocated after each task).

    .venv/bin/python bench/memory_creep.py --tasks 50 --config configs/smoke.yaml --set model.source=random:tiny
    python bench/memory_creep.py --tasks 50 --config configs/kaggle-l4x4.yaml --set model.source=random:qwen2.5-0.5b   # on a GPU

Prints one JSON line per task and a summary line. If 'held' grows task after task, set
placement.recycle_every (per_gpu workers restart every K tasks).
"""

from __future__ import annotations

import argparse
import json
import time


def held_memory() -> dict[str, float]:
    """Memory this process holds now (not a peak): RSS and, with CUDA, the torch allocator's live bytes."""
    import torch

    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    if torch.cuda.is_available():
        out["gpu_allocated_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=50, help="tasks in all, the probe task counted twice")
    p.add_argument("--config", default="configs/smoke.yaml")
    p.add_argument("--dataset", default="arc-agi-1/evaluation")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    import gc

    from augment.tasks import load_dataset, small_tasks
    from solve.pipeline.peak_memory import peak_memory, reset_peak_memory
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine, solve_task
    from solve.sandbox.pool import Sandbox

    cfg = load_config(args.config, args.overrides)
    pool = load_dataset(args.dataset).tasks
    probe = small_tasks(pool, 1)[0]
    others = [t for t in pool if t.id != probe.id][: max(0, args.tasks - 2)]
    engine = Engine.load(cfg)
    rows = []
    with Sandbox(cfg.sandbox) as sandbox:
        for i, task in enumerate([probe, *others, probe]):
            gc.collect()
            reset_peak_memory()
            start = time.monotonic()
            rec = solve_task(task, cfg, engine, sandbox)
            gc.collect()
            row = {"n": i + 1, "task_id": task.id, "status": rec["status"], "seconds": round(time.monotonic() - start, 2),
                   **peak_memory(), **{f"held_{k}": v for k, v in held_memory().items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    first, last = rows[0], rows[-1]
    summary = {"probe": probe.id, "tasks": len(rows)}
    for key in first:
        if key.startswith(("peak_", "held_")):
            summary[key] = {"task_1": first[key], f"task_{len(rows)}": last[key], "growth": round(last[key] - first[key], 1)}
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
