"""The pool's own machinery on real workers: limits that name each outcome right, replacing lost workers.

Every test runs real worker processes; nothing of the sandbox is mocked. Failures are caused for real:
a worker is SIGKILLed from outside, a replacement fails because the interpreter it would run exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

from solve.sandbox import pool as pool_module
from solve.sandbox.config import SandboxConfig
from solve.sandbox.limits import REAP_GRACE_S, parent_deadline_s, worker_worst_case_s
from solve.sandbox.pool import Sandbox
from solve.sandbox.wire import FrameReader, frame, write_all

GRID = np.array([[1, 2], [3, 4]], dtype=np.uint8)
HONEST = "def transform(g):\n    return [list(r) for r in zip(*g)]\n"
TRANSPOSED = ((1, 3), (2, 4))


def config(**kw) -> SandboxConfig:
    return SandboxConfig(**{"workers": 1, "timeout_s": 0.5, "memory_mb": 512, "require_isolation": False, **kw})


# --- byte caps: per frame, not per lifetime ------------------------------------------------------------------
def test_frame_reader_caps_each_frame_not_the_total():
    r, w = os.pipe()
    try:
        reader = FrameReader(r, max_frame=1000)
        for _ in range(50):  # 50 x 800 bytes: far more than the cap in total, each frame under it
            write_all(w, frame(b"x" * 800))
            assert reader.next(time.monotonic() + 5) == b"x" * 800
        write_all(w, frame(b"x" * 1001))
        with pytest.raises(ValueError, match="exceeds 1000"):
            reader.next(time.monotonic() + 5)
    finally:
        os.close(r)
        os.close(w)


def test_frame_reader_total_cap_when_asked():
    r, w = os.pipe()
    try:
        reader = FrameReader(r, max_frame=1000, max_total=1500)
        write_all(w, frame(b"x" * 800))
        assert reader.next(time.monotonic() + 5) == b"x" * 800
        write_all(w, frame(b"x" * 800))
        with pytest.raises(ValueError, match="in total"):
            reader.next(time.monotonic() + 5)
    finally:
        os.close(r)
        os.close(w)


def test_long_lived_worker_survives_replies_totalling_more_than_the_cap(monkeypatch):
    monkeypatch.setattr(pool_module, "MAX_REPLY", 64 << 10)  # read when a worker starts
    printer = "def transform(g):\n    print('y' * 20000)\n    return [list(r) for r in zip(*g)]\n"
    with Sandbox(config(max_output_chars=30000)) as sb:
        (pid,) = sb.worker_pids
        records = [sb.run([(f"p{i}", printer)], [GRID])[0] for i in range(10)]  # ~200 KiB through a 64 KiB cap
        assert sb.worker_pids == [pid]  # the same worker, never replaced
    assert all(r.error is None and r.results[0].output == TRANSPOSED for r in records), records[-1]


# --- time: CPU-limit deaths read 'timeout', the parent outwaits the worker -----------------------------------
def test_cpu_limit_reads_timeout_not_crash():
    busy = "def transform(g):\n    while True: pass\n"
    stubborn = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n" + busy  # waits for the hard limit
    with Sandbox(config(timeout_s=8.0, cpu_s=1)) as sb:  # the wall clock is far: only RLIMIT_CPU can stop them
        soft, hard = sb.run([("soft", busy), ("hard", stubborn)], [GRID])
    assert soft.error == "timeout" and "SIGXCPU" in soft.detail, soft
    assert hard.error == "timeout" and "hard limit" in hard.detail, hard
    assert soft.seconds < 6 and hard.seconds < 6


def test_late_done_frame_reads_timeout_and_keeps_results():
    """A program that stalls the harness after its last grid: the worker's last window, not the parent's deadline."""
    late = HONEST + "import sys, time\nsys.modules['solve.sandbox.child'].CappedText.text = lambda self: time.sleep(60) or ''\n"
    with Sandbox(config(timeout_s=0.3)) as sb:
        (rec,) = sb.run([("late", late)], [GRID, GRID])
        assert rec.error == "timeout" and [r.output for r in rec.results] == [TRANSPOSED] * 2, rec
        assert len(sb.worker_pids) == 1 and sb.run([("h", HONEST)], [GRID])[0].error is None


@pytest.mark.parametrize("timeout_s", [0.1, 0.5, 2.0, 9.5, 10.0, 30.0, 120.0])
@pytest.mark.parametrize("n_grids", [0, 1, 3, 10, 40])
def test_parent_deadline_exceeds_worker_worst_case(timeout_s, n_grids):
    # The worker's worst case: a window per grid, one more for the "done" frame, then the reaping grace.
    worst = (max(n_grids, 1) + 1) * timeout_s + REAP_GRACE_S
    assert worker_worst_case_s(timeout_s, n_grids) >= worst
    assert parent_deadline_s(timeout_s, n_grids) >= worst + 10.0


# --- losing workers ----------------------------------------------------------------------------------------
def kill_worker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)  # let it die before the next write to it


def test_failed_replacement_leaves_a_smaller_working_pool(monkeypatch):
    with Sandbox(config(workers=2)) as sb:
        victim, survivor = sb.worker_pids
        kill_worker(victim)
        monkeypatch.setattr(sys, "executable", "/bin/false")  # every new worker exits at once
        with pytest.warns(RuntimeWarning, match="could not be replaced"):
            first = sb.run([(f"a{i}", HONEST) for i in range(4)], [GRID])
        assert [r.error for r in first].count("crash") == 1, first  # only the program sent to the dead worker
        assert sb.worker_pids == [survivor]
        for _ in range(3):  # later batches run on the remaining worker: the dead one never comes back
            later = sb.run([(f"b{i}", HONEST) for i in range(6)], [GRID])
            assert all(r.error is None and r.results[0].output == TRANSPOSED for r in later), later


def test_pool_without_workers_raises_clearly_then_recovers(monkeypatch):
    with Sandbox(config()) as sb:
        (pid,) = sb.worker_pids
        kill_worker(pid)
        monkeypatch.setattr(sys, "executable", "/bin/false")
        with pytest.warns(RuntimeWarning, match="0 of 1 left"):
            (rec,) = sb.run([("lost", HONEST)], [GRID])
        assert rec.error == "crash" and sb.worker_pids == []
        with pytest.raises(RuntimeError, match="no workers left and cannot start one"):
            sb.run([("nothing", HONEST)], [GRID])
        monkeypatch.undo()  # the interpreter works again: the next call starts a worker
        (rec,) = sb.run([("back", HONEST)], [GRID])
        assert rec.error is None and rec.results[0].output == TRANSPOSED and len(sb.worker_pids) == 1
