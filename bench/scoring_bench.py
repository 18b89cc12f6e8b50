"""Grid-candidate scoring: whole rows vs one KV cache per view's prompt, on the first N demo tasks.

    .venv/bin/python bench/scoring_bench.py --tasks 3 --candidates 8 --views 4 [--model smollm2-135m] [--threads 2]

Prints one JSON line per task (seconds both ways, speedup, largest score difference in nats).
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=3)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    from augment.tasks import load_dataset, small_tasks
    from solve.experiments.bench import DEMO_OVERRIDES, bench_scoring
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.load(load_config(None, DEMO_OVERRIDES + [f"model.source={args.model}"]))
    for task in small_tasks(load_dataset("arc-agi-1/evaluation").tasks, args.tasks):
        print(json.dumps(bench_scoring(engine, task, args.candidates, args.views)), flush=True)


if __name__ == "__main__":
    main()
