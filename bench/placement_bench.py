"""Throughput of the placements on the same tasks: single / per_gpu (1 and N workers) / deepspeed (N ranks).

    .venv/bin/python bench/placement_bench.py --tasks 6 --workers 2                       # CPU, random:tiny
    .venv/bin/python bench/placement_bench.py --config configs/kaggle-l4x4.yaml --tasks 16 --workers 4 \\
        --set model.source=/path/to/model                                               # a GPU machine

Each mode runs in fresh processes (a `deepspeed` launch for deepspeed) into its own run directory;
tasks/hour counts the whole run, model loading and worker start included, as a Kaggle kernel pays it.
Peak memory is the largest per-task peak any worker/rank recorded (GPU allocator on GPU, RSS on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_cmd(mode: str, workers: int, args, out: Path) -> list[str]:
    sets = list(args.set) + [f"placement.mode={'deepspeed' if mode == 'deepspeed' else mode}"]
    if mode == "per_gpu":
        sets.append(f"placement.workers={workers}")
    common = ["--config", args.config, *[x for kv in sets for x in ("--set", kv)], "--out", str(out),
              "--dataset", args.dataset, "--demo-tasks", str(args.tasks), "--no-progress"]
    if mode == "deepspeed":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(workers), "--master_port", str(port),
                "--no_local_rank", "--module", "solve.placement.ds_rank", *common]
    # `python -m`, not the console scripts: the GPU check runs from a bare image with the tree on PYTHONPATH
    return [sys.executable, "-m", "solve.cli.app", "run", *common]


def _peaks(records: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in records:
        for m in ([r["worker"]] if "worker" in r else []) + r.get("ranks", []):
            for k in ("peak_rss_mb", "peak_gpu_mb"):
                if k in m:
                    out[k] = max(out.get(k, 0.0), m[k])
    return out


def measure(mode: str, workers: int, args) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"placement-{mode}-{workers}-"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if not _has_gpu():
        env["DS_ACCELERATOR"] = "cpu"
    start = time.monotonic()
    proc = subprocess.run(_run_cmd(mode, workers, args, out), cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        return {"mode": mode, "workers": workers, "error": (proc.stdout + proc.stderr)[-2000:]}
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = sum(r["status"] == "ok" for r in records)
    return {
        "mode": mode, "workers": workers, "tasks": len(records), "ok": ok, "wall_s": round(wall, 1),
        "tasks_per_hour": round(len(records) / wall * 3600, 1),
        "mean_task_s": round(sum(r.get("seconds", 0.0) for r in records) / max(1, len(records)), 2),
        **_peaks(records), "dir": str(out),
    }


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "smoke.yaml"))
    p.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    p.add_argument("--dataset", default="arc-agi-1/evaluation")
    p.add_argument("--tasks", type=int, default=6, help="the first N tasks with grids <= the demo size")
    p.add_argument("--workers", type=int, default=2, help="per_gpu workers / deepspeed ranks for the N-way rows")
    p.add_argument("--modes", default="single,per_gpu:1,per_gpu:N,deepspeed:N")
    p.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    args = p.parse_args()
    if not any(s.startswith("model.source=") for s in args.set) and args.config.endswith("smoke.yaml"):
        args.set = ["model.source=random:tiny", "train.steps=4", *args.set]  # CPU default: the tiny model
    rows = []
    for spec in args.modes.split(","):
        mode, _, n = spec.partition(":")
        workers = args.workers if n == "N" else int(n or 1)
        rows.append(measure(mode, workers, args))
        print(json.dumps(rows[-1]) if args.json else _line(rows[-1]), flush=True)


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['mode']:<10} x{r['workers']}  FAILED: {r['error'][-300:]}"
    mem = ", ".join(f"{k} {v:.0f}" for k, v in r.items() if k.startswith("peak_"))
    return (f"{r['mode']:<10} x{r['workers']}  {r['ok']}/{r['tasks']} ok  wall {r['wall_s']:>6.1f} s  "
            f"{r['tasks_per_hour']:>7.1f} tasks/h  mean task {r['mean_task_s']:.2f} s  {mem}")


if __name__ == "__main__":
    main()
