"""Placements: per_gpu workers (here CPU workers) and DeepSpeed ranks (here gloo on CPU), each against
the single-process run of the same tasks, config and seeds, on the tiny random model.

What is equal and why:
- per_gpu: every task is independent and seeded (adapter init, sample order, sampling), and each worker
  runs one torch thread as the single-process run here does (conftest pins 1), so attempts and every
  training loss are exactly equal.
- deepspeed, 1 rank: ZeRO-2 over the LoRA weights with the same AdamW, schedule and clipping takes the
  same steps as plain PyTorch: losses equal to float tolerance.
- deepspeed, 2 ranks: data-parallel, so each step sees 2 micro-batches (one per rank) where one process
  sees 1, and the recorded loss is the mean over ranks: not equal step by step. What holds: the first
  step's loss is the mean of two untrained micro-batch losses, close to the single run's first loss
  (same model, same task: within 10 %), and training still lowers the loss.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from augment.tasks import load_dataset, select
from solve.pipeline.runconfig import load_config
from solve.placement.ds_launch import SHM_BUFFER, SHM_DIR, remove_shm_buffers
from solve.select.submission import validate_submission

ROOT = Path(__file__).resolve().parents[3]
TASK_IDS = ["00576224", "2072aba6", "31d5ba1a"]  # small grids: seconds per task on the tiny model
BASE = ["model.source=random:tiny", "train.steps=3", "run.task_timeout_s=120"]


@pytest.fixture(scope="module")
def tasks():
    return select(load_dataset("arc-agi-1/evaluation").tasks, TASK_IDS)


def _cfg(*extra: str):
    return load_config(ROOT / "configs" / "smoke.yaml", BASE + list(extra))


def _run(cfg, tasks, out: Path):
    from rich.console import Console

    from solve.pipeline.run import RunOptions
    from solve.placement.dispatch import run_tasks

    run_tasks(cfg, tasks, RunOptions(out=out, progress=False), Console(quiet=True))
    return _records(out)


def _records(out: Path) -> dict[str, dict]:
    return {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _valid(out: Path, tasks) -> None:
    assert validate_submission(json.loads((out / "submission.json").read_text()), tasks) == []


@pytest.fixture(scope="module")
def single(tasks, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return _run(_cfg(), tasks, out)


# --- quick -----------------------------------------------------------------------------------------


def test_every_config_validates():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_deepspeed_config_is_ds():
    cfg = load_config(ROOT / "configs" / "deepspeed-cpu.yaml")
    assert cfg.placement.mode == "deepspeed" and cfg.placement.zero_stage == 2


def test_cpu_worker_count():
    from solve.placement.per_gpu import worker_count

    n, devices = worker_count(_cfg("placement.mode=per_gpu", "placement.workers=2", "model.device=cpu"))
    assert n == 2 and devices == ["cpu", "cpu"]


# --- per_gpu ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_per_gpu_equals_single_process(tasks, single, tmp_path):
    recs = _run(_cfg("placement.mode=per_gpu", "placement.workers=2"), tasks, tmp_path)
    assert set(recs) == set(TASK_IDS)
    for tid in TASK_IDS:
        a, b = single[tid], recs[tid]
        assert b["status"] == a["status"] == "ok"
        assert b["attempts"] == a["attempts"]
        assert b["stages"]["ttt"]["losses"] == a["stages"]["ttt"]["losses"]
        assert b["worker"]["device"] == "cpu" and b["worker"]["peak_rss_mb"] > 0
    assert {r["worker"]["slot"] for r in recs.values()} == {0, 1}  # both workers took tasks
    _valid(tmp_path, tasks)


@pytest.mark.slow
def test_per_gpu_worker_killed_mid_task(tasks, single, tmp_path, monkeypatch):
    """One task kills its worker on every try (retried once, then recorded failed); another only on its
    first try (the retry, with half the steps, succeeds); the third is untouched. Workers recycle after
    every task, so replacement and recycling run together."""
    always, once, fine = TASK_IDS
    monkeypatch.setenv("ARC_TTT_TEST_KILL_TASK", f"{always},{once}@1")
    recs = _run(_cfg("placement.mode=per_gpu", "placement.workers=2", "placement.recycle_every=1"), tasks, tmp_path)
    assert recs[always]["status"] == "failed" and recs[always]["tries"] == 2
    assert recs[always]["error"]["stage"] == "worker" and "SIGKILL" in recs[always]["error"]["message"]
    assert len(recs[always]["attempts"]) == len(tasks[0].test_inputs)  # placeholders in the submission
    assert recs[once]["status"] == "ok" and recs[once]["tries"] == 2
    assert recs[once]["plan"]["steps"] == 1 and len(recs[once]["stages"]["ttt"]["losses"]) == 1  # 3 // 2
    assert recs[fine]["status"] == "ok" and recs[fine]["attempts"] == single[fine]["attempts"]
    starts = [e for e in map(json.loads, (tmp_path / "timeline.jsonl").read_text().splitlines()) if e["event"] == "start"]
    assert sorted(e["task_id"] for e in starts) == sorted([always, always, once, once, fine])
    _valid(tmp_path, tasks)


# --- deepspeed -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ds(out: Path, ranks: int, task_ids: list[str], extra: list[str] = (), env: dict | None = None, timeout=420, stage=2):
    """A real deepspeed run in fresh processes: the `deepspeed` launcher for 2 ranks, plain python for 1."""
    sets = [x for kv in BASE + ["placement.mode=deepspeed", f"placement.zero_stage={stage}", *extra] for x in ("--set", kv)]
    args = ["--config", str(ROOT / "configs" / "smoke.yaml"), *sets, "--out", str(out),
            "--dataset", "arc-agi-1/evaluation", "--task-ids", ",".join(task_ids), "--no-progress"]
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    if ranks == 1:
        cmd = [sys.executable, "-m", "solve.placement.ds_rank", *args]
    else:
        cmd = [str(bin_dir / "deepspeed"), "--num_gpus", str(ranks), "--master_port", str(port),
               "--no_local_rank", "--module", "solve.placement.ds_rank", *args]
    full_env = {**os.environ, "DS_ACCELERATOR": "cpu", "PATH": f"{bin_dir}:{os.environ['PATH']}", **(env or {})}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    finally:
        if ranks > 1:  # the launcher's ranks leave ~69 MB /dev/shm buffers each: remove this launch's
            remove_shm_buffers(port)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _records(out)


def _launch_ports(console_text: str) -> list[int]:
    """The master ports of the launches a self-launching run printed."""
    return [int(p) for p in re.findall(r"launching \d+ deepspeed ranks .*\(master port (\d+)\)", console_text)]


class _ShmWatch:
    """Polls /dev/shm in a thread while a run goes on: which DeepSpeed buffers existed at some point."""

    def __init__(self):
        import threading

        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self.seen |= {p.name for p in SHM_DIR.glob("deepspeed_allreduce_buffer_*")}

    def __enter__(self) -> "_ShmWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def of(self, ports: list[int]) -> list[str]:
        return sorted(n for n in self.seen if (m := SHM_BUFFER.fullmatch(n)) and int(m["port"]) in ports)


def _shm_buffers(ports: list[int]) -> list[str]:
    """DeepSpeed allreduce buffers in /dev/shm of the launches on `ports` (ours: other runs on the host
    have their own ports)."""
    return sorted(p.name for p in SHM_DIR.glob("deepspeed_*") if (m := SHM_BUFFER.fullmatch(p.name)) and int(m["port"]) in ports)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """random:tiny saved as a HF directory. ZeRO-3 builds a model partitioned under deepspeed.zero.Init,
    which draws random weights in another order: loading saved weights gives both the same model (and is
    the path a real ZeRO-3 model takes: from_pretrained, partitioned as it loads)."""
    from ttt.config import ModelConfig
    from ttt.models import load_model

    out = tmp_path_factory.mktemp("tiny-model")
    model, tokenizer = load_model(ModelConfig(source="random:tiny", device="cpu"))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_one_rank_equals_single_process(tasks, single, tmp_path, tiny_dir, stage):
    """ZeRO-3 too: the second task equal to the single run also shows that the adapter reset reached
    the partitioned LoRA weights (else task 2 would start from task 1's adapter)."""
    recs = _ds(tmp_path, 1, TASK_IDS[:2], [f"model.source={tiny_dir}"], stage=stage)
    for tid in TASK_IDS[:2]:
        assert recs[tid]["zero_stage"] == stage
        assert recs[tid]["status"] == "ok"
        assert recs[tid]["stages"]["ttt"]["losses"] == pytest.approx(single[tid]["stages"]["ttt"]["losses"], rel=1e-5)
        assert recs[tid]["attempts"] == single[tid]["attempts"]
    _valid(tmp_path, tasks[:2])


@pytest.mark.slow
def test_deepspeed_two_ranks(tasks, single, tmp_path):
    recs = _ds(tmp_path, 2, TASK_IDS[:2], ["train.steps=6"])
    for tid in TASK_IDS[:2]:
        r = recs[tid]
        assert r["status"] == "ok" and r["zero_stage"] == 2
        assert [m["rank"] for m in r["ranks"]] == [0, 1]
        losses = r["stages"]["ttt"]["losses"]
        assert len(losses) == 6 and losses[-1] < losses[0]
        assert losses[0] == pytest.approx(single[tid]["stages"]["ttt"]["losses"][0], rel=0.10)
        # rank 0 gathered both ranks' samples: as many program and grid views as one process makes
        assert r["stages"]["induction"]["sampled"] == single[tid]["stages"]["induction"]["sampled"]
    _valid(tmp_path, tasks[:2])


@pytest.mark.slow
def test_deepspeed_zero3_two_ranks_with_uneven_shares(tasks, single, tmp_path, tiny_dir):
    """ZeRO-3 partitions the weights, so ranks must run every forward together. 3 program views and 3
    grid views on 2 ranks with 1 prompt per batch give rank 0 two batches and rank 1 one: rank 1 pads
    with a dummy generate (synced_gpus) or the run would hang until the collective timeout."""
    recs = _ds(tmp_path, 2, TASK_IDS[:1], [f"model.source={tiny_dir}", "train.steps=4", "solve.program_views=3", "solve.grid_views=3",
                                            "solve.batch_size=1", "placement.collective_timeout_s=60"], stage=3)
    for tid in TASK_IDS[:1]:
        r = recs[tid]
        assert r["status"] == "ok" and r["zero_stage"] == 3, r["error"]
        losses = r["stages"]["ttt"]["losses"]
        assert len(losses) == 4 and losses[-1] < losses[0]
        assert losses[0] == pytest.approx(single[tid]["stages"]["ttt"]["losses"][0], rel=0.10)
        assert r["stages"]["induction"]["sampled"] == 3 * single[tid]["stages"]["induction"]["sampled"]  # smoke: 1 view
        assert r["stages"]["transduction"]["predictions"] == 3 * len(tasks[TASK_IDS.index(tid)].test_inputs)
    _valid(tmp_path, tasks[:1])


@pytest.mark.slow
def test_deepspeed_rank_failure_is_recorded_not_a_hang(tasks, tmp_path):
    """Rank 1 fails at the start of the first task's training; rank 0 waits in the step's all-reduce
    until the collective timeout (10 s), then both agree the stage failed. Rank 0 records the task
    failed naming both ranks' errors, and the run stops cleanly (the group may be out of step): the
    second task keeps its placeholder and a rerun resumes it."""
    first, second = TASK_IDS[:2]
    recs = _ds(tmp_path, 2, [first, second], ["placement.collective_timeout_s=10"],
               env={"ARC_TTT_TEST_FAIL_RANK": f"1:{first}"})
    assert list(recs) == [first]
    err = recs[first]["error"]
    assert recs[first]["status"] == "failed" and err["stage"] == "ttt"
    assert "rank 1: RuntimeError: test-only fault injected on rank 1" in err["message"]
    _valid(tmp_path, tasks[:2])


@pytest.mark.slow
def test_deepspeed_self_launch_survives_ranks_dying(tasks, tmp_path, monkeypatch):
    """`arc-ttt run` with placement.ranks=2 (not started by a launcher) runs the deepspeed launcher
    itself. Rank 1 exits outright at the first task's training, so the launcher ends both ranks; the
    run relaunches, the ranks die on that task again, it is recorded as failed with placeholders, and
    a third launch solves the second task."""
    from rich.console import Console

    from solve.pipeline.run import RunOptions
    from solve.placement.dispatch import run_tasks

    first, second = TASK_IDS[:2]
    monkeypatch.setenv("ARC_TTT_TEST_FAIL_RANK", f"1:{first}:die")
    cfg = _cfg("placement.mode=deepspeed", "placement.ranks=2", "placement.collective_timeout_s=30")
    console = Console(record=True, width=200)
    with _ShmWatch() as shm:
        run_tasks(cfg, tasks[:2], RunOptions(out=tmp_path, progress=False), console)
    recs = _records(tmp_path)
    assert recs[first]["status"] == "failed" and recs[first]["error"]["stage"] == "deepspeed"
    assert "died twice" in recs[first]["error"]["message"]
    assert recs[second]["status"] == "ok" and recs[second]["zero_stage"] == 2
    text = console.export_text()
    assert text.count("launching 2 deepspeed ranks") == 3
    ports = _launch_ports(text)
    assert len(ports) == 3 and len(shm.of(ports)) >= 2  # each rank of a launch creates one (69 MB)
    assert _shm_buffers(ports) == []  # ranks that died left theirs: every launch's were removed
    _valid(tmp_path, tasks[:2])


@pytest.mark.slow
def test_deepspeed_self_launch_is_killed_at_the_global_deadline(tasks, tmp_path, monkeypatch):
    """The launching process ends the ranks when the global deadline (plus grace) passes, even while
    they are still starting, records the tasks left as 'deadline' (retried by a resumed run) and
    leaves no rank running."""
    import time

    from rich.console import Console

    import solve.placement.ds_launch as ds_launch
    from solve.pipeline.run import RunOptions
    from solve.placement.dispatch import run_tasks

    monkeypatch.setattr(ds_launch, "DEADLINE_GRACE_S", 1.0)
    cfg = _cfg("placement.mode=deepspeed", "placement.ranks=2")
    start = time.monotonic()
    console = Console(record=True, width=200, file=open(os.devnull, "w"))
    run = run_tasks(cfg, tasks[:2], RunOptions(out=tmp_path, global_deadline_s=2.0, progress=False), console)
    assert time.monotonic() - start < 20  # killed at ~3 s, not left to finish (a task takes longer)
    ports = _launch_ports(console.export_text())
    assert len(ports) == 1 and _shm_buffers(ports) == []  # the killed ranks' buffers are gone
    recs = _records(tmp_path)
    assert {r["status"] for r in recs.values()} == {"deadline"} and set(recs) == set(TASK_IDS[:2])
    assert len(run.pending()) == 2  # never started: a resumed run tries them
    _valid(tmp_path, tasks[:2])
    time.sleep(0.5)
    alive = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "solve.placement.ds_rank" in cmd and str(tmp_path) in cmd:
            alive.append(cmd)
    assert alive == []
