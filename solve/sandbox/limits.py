"""The sandbox's time limits, in one place, so the parent, the worker and the child agree on them.

A program with n grids may keep its worker busy for at most `worker_worst_case_s`: each grid's result
must arrive within `timeout_s` of the previous one (the first window also covers compiling and the
program's top level), the final "done" frame within one more window, and a child that stops
reporting is reaped within `REAP_GRACE_S`. The parent waits `parent_deadline_s`, strictly longer, so
a worker that is merely slow is never mistaken for a dead one (which would read 'crash', not 'timeout').

RLIMIT_CPU backs the wall clock up: soft `cpu_limit_s` (SIGXCPU, classified 'timeout') below a hard
limit `CPU_HARD_EXTRA_S` higher (SIGKILL, for a program that catches or ignores SIGXCPU).
"""

from __future__ import annotations

import math

REAP_GRACE_S = 0.5  # how long the worker waits for a child that closed its pipe to exit, before SIGKILL
CPU_HARD_EXTRA_S = 1  # seconds between the soft (SIGXCPU) and the hard (SIGKILL) CPU limit
PARENT_SLACK_S = 10.0  # the parent's margin over the worker's worst case: scheduling on a loaded machine
PARENT_SLACK_FRACTION = 0.25  # ... growing with long calls, whose overheads (fork, reaping) grow too


def cpu_limit_s(timeout_s: float, cpu_s: int | None, n_grids: int) -> int:
    """The soft RLIMIT_CPU of one program: `cpu_s`, or ceil(timeout_s x grids) + 1 when unset."""
    return cpu_s or math.ceil(timeout_s * max(n_grids, 1)) + 1


def worker_worst_case_s(timeout_s: float, n_grids: int) -> float:
    """The longest a worker may legitimately take to answer one program call."""
    return (max(n_grids, 1) + 1) * timeout_s + REAP_GRACE_S


def parent_deadline_s(timeout_s: float, n_grids: int) -> float:
    """How long the parent waits for a worker's answer before declaring the worker gone."""
    worst = worker_worst_case_s(timeout_s, n_grids)
    return worst + PARENT_SLACK_S + PARENT_SLACK_FRACTION * worst
