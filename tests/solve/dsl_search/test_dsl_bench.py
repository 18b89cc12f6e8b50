"""The DSL search's `arc-ttt bench` row: real throughput numbers over real tasks."""

from __future__ import annotations

from solve.dsl_search.bench import run_benchmark


def test_bench_reports_throughput_depth_and_solves():
    r = run_benchmark("arc-agi-1/training", n_tasks=2, depth=2, seconds=0.3)
    assert r["tasks"] == 2 and r["depth"] == 2
    assert r["calls_per_s"] > 100 and r["behaviours_per_s"] > 0
    assert 1 <= r["depth_reached_min"] <= 2 and 0 <= r["solved"] <= 2
