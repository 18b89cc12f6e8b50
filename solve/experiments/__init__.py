"""Ablations, sweeps, merges, benchmarks: planning points, running them, tables and plots."""
