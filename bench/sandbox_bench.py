"""Thin wrapper kept for old commands: the benchmark lives in `solve.sandbox_bench` (so installed arc-ttt has it).

    .venv/bin/python bench/sandbox_bench.py --tasks 40
"""

from solve.sandbox_bench import PROGRAMS, main, run_benchmark  # noqa: F401  (re-exported for importers)

if __name__ == "__main__":
    main()
