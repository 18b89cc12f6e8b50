"""The GPU check (bench/gpu_check.sh) runs the first time on a bare device machine: CI rehearses the very command on
the CPU, in a venv of only what the device image holds plus the wheelhouse (`make gpu-check-rehearse`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheelhouse_brings_every_dependency_the_device_image_lacks():
    from packaging.requirements import Requirement

    wheelhouse = _load("gpu_check_wheelhouse")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {Requirement(d).name.lower() for d in deps}
    missing = names - wheelhouse.IMAGE_HAS - set(wheelhouse.ROOTS)
    assert not missing, f"neither in the device image nor in the wheelhouse: {missing} (bench/gpu_check_wheelhouse.py)"


def test_a_stage_past_its_timeout_loses_nothing_else(tmp_path):
    """merge_gap is stopped at 1 s (importing torch alone takes longer): env's row stays, each stage has its JSON line,
    the table and the log name both, and the check fails."""
    check = _load("gpu_check")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry", "--only", "env,merge_gap", "--timeout",
                           "merge_gap=1", "--out-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "gpu_check.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["status"]) for r in lines] == [("env", "ok"), ("merge_gap", "timeout")]
    assert lines[0]["row"]["versions"]["torch"] and lines[1]["why"].startswith("stopped after 1 s")
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| env | ok |" in table and "| merge_gap | timeout |" in table
    assert "===== merge_gap: exit None" in (tmp_path / "gpu_check.log").read_text()
    assert "| x | skipped |" in check.render([{"stage": "x", "status": "skipped", "why": "the budget is spent"}], True, 0.0)


@pytest.mark.slow
def test_the_device_command_runs_in_a_venv_of_only_the_image_and_the_wheelhouse(tmp_path):
    out = tmp_path / "gpu-check"
    proc = subprocess.run(["make", "gpu-check-rehearse", f"GPU_CHECK_OUT={out}"], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "installing what is missing from .gpu_check/wheels" in proc.stderr  # the venv lacked them: the install ran
    records = [json.loads(line) for line in (out / "gpu_check.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in records]
    assert stages[0] == "env" and "per_gpu" in stages and "pretrain_deepspeed" in stages, stages
    assert all(r["status"] == "ok" for r in records), [(r["stage"], r.get("why", "")[-500:]) for r in records if r["status"] != "ok"]
    rows = {r["stage"]: r["row"] for r in records}
    assert rows["env"]["versions"]["transformers"] == "5.17.0" and rows["env"]["versions"]["pydantic"]
    assert rows["kaggle_ttt:tiny"]["fits"] and rows["kaggle_sampling:tiny"]["grid_prefill"]["fits"]
    assert all(r["ok"] == r["tasks"] == 2 for r in rows["per_gpu"]["rows"]), rows["per_gpu"]
    assert all("tokens_per_s" in rows[f"pretrain_{w}"] for w in ("lora", "deepspeed", "full"))
    assert rows["merge_gap"]["float32"]["max_abs"] < 1e-4 < rows["merge_gap"]["bfloat16"]["max_abs"]  # bf16 merges round
    table = (out / "gpu_check.md").read_text()
    assert "| tiny | 64 |" in table and "| per_gpu x2 (2/2 ok)" in table
