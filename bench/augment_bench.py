"""Thin wrapper kept for old commands: the benchmark lives in `augment.bench` (so installed arc-ttt has it).

    .venv/bin/python bench/augment_bench.py --sets geometric+color --n-samples 32 --limit 100
"""

from augment.bench import format_table, main, run_benchmark  # noqa: F401  (re-exported for importers)

if __name__ == "__main__":
    main()
