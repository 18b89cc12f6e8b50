"""Thin wrapper kept for old commands: the benchmark lives in `ttt.bench` (so installed arc-ttt has it).

    .venv/bin/python bench/ttt_bench.py --seq-lens 512 1024
"""

from ttt.bench import PEAK_TFLOPS, PRESETS, main, matmul_params, run_benchmark  # noqa: F401  (re-exported)

if __name__ == "__main__":
    main()
