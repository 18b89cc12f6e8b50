"""Throughput of the synthetic task generator: accepted tasks per second on one core.

The one-time load of the ARC datasets (evaluation grid keys, clean training tasks) is timed apart
from generation, since a long run pays it once. `python -m solve.synth.bench [--n N] [--seed S] [--profile]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from solve.synth.corpus import generate_corpus, load_sources


def run_benchmark(n: int = 500, seed: int = 0, profile: bool = False) -> dict[str, Any]:
    """Generate n slots into a temporary directory; print and return tasks/s with the reject counts."""
    t0 = time.perf_counter()
    sources = load_sources()
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            report = prof.runcall(generate_corpus, n, seed, out, progress=False, sources=sources)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        else:
            report = generate_corpus(n, seed, out, progress=False, sources=sources)
    result = {
        "n": n,
        "seed": seed,
        "accepted": report["accepted"],
        "attempted": report["attempted"],
        "rejects": report["rejects"],
        "load_seconds": round(load_s, 3),
        "seconds": report["seconds"],  # generation and writing, without the load
        "tasks_per_s": round(report["accepted"] / report["seconds"], 1),
        "attempts_per_s": round(report["attempted"] / report["seconds"], 1),
    }
    print(f"synth: {result['accepted']} tasks in {result['seconds']:.2f} s = {result['tasks_per_s']} tasks/s "
          f"({result['attempts_per_s']} programs judged/s; data load {load_s:.2f} s, once)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solve.synth.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the run")
    args = parser.parse_args(argv)
    print(json.dumps(run_benchmark(args.n, args.seed, args.profile), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
