"""--executor ray on a local Ray instance (2 CPUs, started here), against the local executor on the same
tasks, config and seeds, on the tiny random model (seconds per task).

Equal, and why: every task is independent and seeded, and each actor runs one torch thread as this
process does (conftest pins 1; placement.cpus_per_worker=1), so attempts, scores and every training
loss are exactly equal; only timings and the `worker` field differ.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from augment.tasks import load_dataset, select
from solve.pipeline.runconfig import load_config
from solve.select.submission import validate_submission

ROOT = Path(__file__).resolve().parents[3]
TASK_IDS = ["00576224", "2072aba6", "31d5ba1a"]  # small grids
BASE = ["model.source=random:tiny", "run.task_timeout_s=120", "placement.cpus_per_worker=1"]
PARAMS = ["train.steps=1,2"]


def _cfg(*extra: str):
    return load_config(ROOT / "configs" / "smoke.yaml", BASE + list(extra))


def _records(out: Path) -> dict[str, dict]:
    return {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _lines(out: Path) -> list[str]:
    return (out / "results.jsonl").read_text().splitlines()


def _same(a: dict, b: dict) -> None:
    """Equal records, timings and where they ran aside."""
    assert (b["status"], b["attempts"], b["score"], b["reasons"]) == (a["status"], a["attempts"], a["score"], a["reasons"])
    assert b["stages"]["ttt"]["losses"] == a["stages"]["ttt"]["losses"]
    assert set(b["stages"]) == set(a["stages"])


# --- quick -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster, workers, expected", [
    ({"CPU": 2.0}, 0, (2, 1.0, 0.0)),  # a CPU cluster: one actor per core
    ({"CPU": 64.0, "GPU": 8.0}, 0, (8, 8.0, 1.0)),  # one actor per GPU, the CPUs shared among them
    ({"CPU": 64.0, "GPU": 8.0}, 3, (3, 8.0, 1.0)),  # placement.workers caps them
])
def test_actor_resources(cluster, workers, expected):
    from solve.placement.ray_actors import actor_resources

    assert actor_resources(_cfg("placement.cpus_per_worker=0", f"placement.workers={workers}"), cluster) == expected


def test_actor_resources_refuses_a_cluster_too_small():
    from solve.placement.ray_actors import RayExecutorError, actor_resources

    with pytest.raises(RayExecutorError, match="cannot host one actor of 4 CPUs"):
        actor_resources(_cfg("placement.cpus_per_worker=4"), {"CPU": 2.0})


def test_deepspeed_is_refused_under_ray():
    from solve.placement.dispatch import check_ray_config

    with pytest.raises(ValueError, match="placement.mode deepspeed needs --executor local"):
        check_ray_config(_cfg("placement.mode=deepspeed"))


# --- on a local Ray instance ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks():
    return select(load_dataset("arc-agi-1/evaluation").tasks, TASK_IDS)


@pytest.fixture(scope="module")
def ray_session():
    import ray  # a test extra: CI has it

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _sweep(tasks, out: Path, executor: str):
    from rich.console import Console

    from solve.experiments.plan import run_points, sweep_plan

    points, cfgs = sweep_plan(ROOT / "configs" / "smoke.yaml", BASE, PARAMS)
    run_points(points, cfgs, tasks, out, Console(quiet=True), progress=False, executor=executor)
    return points


@pytest.mark.slow
def test_ray_sweep_equals_local_and_resumes_both_ways(ray_session, tasks, tmp_path):
    """2 points x 2 tasks. The Ray sweep starts from a directory where the local executor already finished
    one task of the first point: it skips that task (its line stays the only one), solves the other 3 units
    with the same records as the local sweep, and a local resume of the result finds nothing to do."""
    two = tasks[:2]
    local = tmp_path / "local"
    points = _sweep(two, local, "local")
    ray_dir, first = tmp_path / "ray", points[0].name
    # A local run of the first point, stopped after its first task: the same directory a Ctrl-C would leave.
    (ray_dir / first).mkdir(parents=True)
    shutil.copy(local / first / "config.yaml", ray_dir / first / "config.yaml")
    kept = _lines(local / first)[0]
    (ray_dir / first / "results.jsonl").write_text(kept + "\n")

    _sweep(two, ray_dir, "ray")
    for p in points:
        recs, ref = _records(ray_dir / p.name), _records(local / p.name)
        assert set(recs) == {t.id for t in two}
        for tid in recs:
            _same(ref[tid], recs[tid])
        assert validate_submission(json.loads((ray_dir / p.name / "submission.json").read_text()), two) == []
        assert (ray_dir / p.name / "tasks").is_dir() and len(list((ray_dir / p.name / "tasks").glob("*.json"))) >= 1
    assert _lines(ray_dir / first)[0] == kept and len(_lines(ray_dir / first)) == 2  # not solved again
    ray_recs = [r for p in points for r in _records(ray_dir / p.name).values() if "worker" in r]
    assert len(ray_recs) == 3 and {r["worker"]["executor"] for r in ray_recs} == {"ray"}
    assert all(r["tries"] == 1 for r in ray_recs)

    before = {p.name: _lines(ray_dir / p.name) for p in points}
    _sweep(two, ray_dir, "local")  # the reverse: a local resume of the Ray sweep has nothing left to run
    assert {p.name: _lines(ray_dir / p.name) for p in points} == before


@pytest.mark.slow
def test_ray_actor_killed_mid_task(ray_session, tasks, tmp_path, monkeypatch):
    """One task kills its actor on every try (Ray retries it once, then it is recorded failed with Ray's
    reason); another only on its first try (the retry, on the restarted actor, gives the local record);
    the third is untouched. Every record is written once and the submission stays valid."""
    from rich.console import Console

    from solve.pipeline.run import RunOptions
    from solve.placement.dispatch import run_tasks

    always, once, fine = TASK_IDS
    cfg = _cfg("train.steps=2")
    local = tmp_path / "local"
    run_tasks(cfg, tasks, RunOptions(out=local, progress=False), Console(quiet=True))
    monkeypatch.setenv("ARC_TTT_TEST_RAY_KILL_TASK", f"{always},{once}@1")
    out = tmp_path / "ray"
    run_tasks(cfg, tasks, RunOptions(out=out, progress=False), Console(quiet=True), executor="ray")
    recs, ref = _records(out), _records(local)
    assert len(_lines(out)) == 3
    assert recs[always]["status"] == "failed" and recs[always]["tries"] == 2 and recs[always]["error"]["stage"] == "worker"
    assert "died" in recs[always]["error"]["message"] and "Actor" in recs[always]["error"]["message"]
    assert len(recs[always]["attempts"]) == len(tasks[0].test_inputs)  # placeholders in the submission
    assert recs[once]["tries"] == 2 and recs[once]["worker"]["try"] == 2
    _same(ref[once], recs[once])
    _same(ref[fine], recs[fine])
    assert recs[fine]["tries"] == 1
    assert validate_submission(json.loads((out / "submission.json").read_text()), tasks) == []
