"""per_gpu staggered starts (`placement.stagger_starts`): workers load the model one at a time, and a
worker that dies or hangs while loading does not block the others. The turn logic is checked with fake
pipes (fast); the rest with real CPU worker processes and the tiny random model."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

import solve.placement.per_gpu as per_gpu
from solve.kernel.rehearse import processes_with_env
from solve.pipeline.runconfig import load_config
from solve.placement.gpu_worker import HANG_LOAD_ENV, KILL_LOAD_ENV, LOAD_FAULT_FILE

ROOT = Path(__file__).resolve().parents[3]
MARK = "ARC_TTT_TEST_MARK"  # inherited by every worker: finds what a start left running


def _cfg(workers: int, stagger: bool = True):
    return load_config(ROOT / "configs" / "smoke.yaml", [
        "model.source=random:tiny", "model.device=cpu", "placement.mode=per_gpu", f"placement.workers={workers}",
        f"placement.stagger_starts={str(stagger).lower()}",
    ])


class _FakeConn:
    def __init__(self):
        self.sent: list[tuple] = []
        self.inbox: list[tuple] = []

    def send(self, msg):
        self.sent.append(msg)

    def poll(self):
        return bool(self.inbox)

    def recv(self):
        return self.inbox.pop(0)

    def close(self):
        pass


def _fake_pool(n: int):
    slots = [per_gpu.Slot(i, "cpu", 1, conn=_FakeConn(), state="starting", started=time.monotonic()) for i in range(n)]
    conns = [s.conn for s in slots]  # kept: a closed slot drops its conn
    return per_gpu._Pool(_cfg(n), None, None, None, slots, None, 0.0, Console(quiet=True)), slots, conns


def _say(pool, slot, *msg):
    slot.conn.inbox.append(msg)
    pool._drain(slot)


def _granted(conns):
    return [i for i, c in enumerate(conns) if ("load",) in c.sent]


def test_one_load_turn_at_a_time_in_request_order(monkeypatch):
    """Three workers ask; only the first is let in, the next only once it reported its load; a waiting
    worker has no start timeout (its wait is bounded by the loader's), the loader's counts from its turn."""
    pool, slots, conns = _fake_pool(3)
    for i in (2, 0, 1):
        _say(pool, slots[i], "load_wait")
    pool._grant_load()
    assert _granted(conns) == [2] and slots[2].load == "loading"
    pool._grant_load()
    assert _granted(conns) == [2], "no second turn while one is held"
    monkeypatch.setattr(per_gpu, "START_TIMEOUT_S", 0.0)
    killed = []
    monkeypatch.setattr(pool, "_kill", lambda slot: killed.append(slot.index))
    monkeypatch.setattr(pool, "_died", lambda slot, why: None)
    for slot in slots:
        slot.proc = type("P", (), {"poll": lambda self: None})()
        pool._check(slot)
    assert killed == [2], "only the loader is past its start timeout; the waiting ones are not"
    _say(pool, slots[2], "loaded", {"start": 1.0, "end": 2.0})
    assert slots[2].loads == [(1.0, 2.0)] and slots[2].load == ""
    pool._grant_load()
    assert _granted(conns) == [0, 2]


def test_a_dead_loader_frees_the_turn_and_a_dead_waiter_is_skipped():
    pool, slots, conns = _fake_pool(3)
    for slot in slots:
        _say(pool, slot, "load_wait")
    pool._grant_load()
    assert _granted(conns) == [0]
    pool._close(slots[1])  # died while waiting for its turn
    pool._close(slots[0])  # died while loading
    pool._grant_load()
    assert _granted(conns) == [0, 2]


@pytest.mark.slow
def test_workers_without_stagger_do_not_ask(tmp_path):
    """stagger_starts=false: the worker loads at once (no "load_wait"), yet still reports its load."""
    cfg = _cfg(1, stagger=False)
    slots = per_gpu.start_workers_only(cfg, tmp_path, Console(quiet=True))
    assert len(slots[0].loads) == 1 and slots[0].state == "down"
    assert "waiting" not in (tmp_path / "worker-0.log").read_text()


@pytest.mark.slow
def test_staggered_workers_load_one_after_another(tmp_path):
    """Real workers: each load starts after the previous one ended (timestamps the workers report)."""
    slots = per_gpu.start_workers_only(_cfg(3), tmp_path, Console(quiet=True))
    assert all(len(s.loads) == 1 for s in slots), [s.loads for s in slots]
    loads = sorted(s.loads[0] for s in slots)
    for (_, prev_end), (start, _) in zip(loads, loads[1:]):
        assert start >= prev_end, loads
    for s in slots:
        assert "for its turn" in (tmp_path / f"worker-{s.index}.log").read_text()
    assert not per_gpu._live


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["dies", "hangs"])
def test_a_worker_failing_while_loading_does_not_block_the_others(fault, tmp_path, monkeypatch):
    """The first worker to get its turn is SIGKILLed (or hangs, ignoring SIGTERM) once its load has begun:
    the other, waiting for its turn, gets it (at the death, or START_TIMEOUT_S after the hung one's turn
    began, when the watchdog kills it); the replacement loads after it; every slot ends up ready once,
    and no worker outlives the start."""
    marker = uuid.uuid4().hex
    monkeypatch.setenv(MARK, marker)
    monkeypatch.setenv(KILL_LOAD_ENV if fault == "dies" else HANG_LOAD_ENV, "1")
    monkeypatch.setattr(per_gpu, "START_TIMEOUT_S", 30.0)  # imports included (2 busy cores); the hang's cost
    starts = []
    real_start = per_gpu._Pool._start
    monkeypatch.setattr(per_gpu._Pool, "_start", lambda pool, slot: (starts.append(slot.index), real_start(pool, slot)))
    begin = time.monotonic()
    slots = per_gpu.start_workers_only(_cfg(2), tmp_path, Console(quiet=True))
    assert time.monotonic() - begin < 150
    assert (tmp_path / LOAD_FAULT_FILE).exists() and len(starts) == 3, starts  # one worker took the fault, was replaced
    assert [len(s.loads) for s in slots] == [1, 1] and all(s.state == "down" for s in slots)  # ready, then stopped
    (_, first_end), (second_start, _) = sorted(s.loads[0] for s in slots)
    assert second_start >= first_end
    until = time.monotonic() + 10
    while processes_with_env(MARK, marker) and time.monotonic() < until:
        time.sleep(0.2)
    assert processes_with_env(MARK, marker) == []
    assert not per_gpu._live
