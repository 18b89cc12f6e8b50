"""DeepSpeed's memory settings and out-of-memory recovery, on one real CPU rank (gloo): see
tests/ttt/ds_memory_rank.py, which runs in its own process (a process group is per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttt.ds import MAX_BUCKET, MIN_BUCKET, bucket_elements, ds_config

ROOT = Path(__file__).resolve().parents[2]


def test_ds_config_has_a_bf16_section_and_lora_sized_buckets():
    cfg = ds_config(3, 2, bf16=True, trainable=9_000_000)
    assert cfg["bf16"] == {"enabled": True}
    assert cfg["zero_optimization"]["reduce_bucket_size"] == cfg["zero_optimization"]["allgather_bucket_size"] == 9_000_000
    assert ds_config(2, 1)["bf16"] == {"enabled": False}
    assert bucket_elements(10) == MIN_BUCKET and bucket_elements(None) == bucket_elements(10**12) == MAX_BUCKET


@pytest.mark.slow
def test_one_rank_builds_bf16_partitions_and_survives_an_out_of_memory_micro_batch(tmp_path):
    out = tmp_path / "out.json"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "ttt" / "ds_memory_rank.py"), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["zero3_dtypes"] == ["torch.bfloat16"], "zero.Init built the bf16 model in another dtype"
    assert report["zero3_bf16"] and report["zero3_buckets"] == [report["zero3_bucket_want"]] * 2
    assert report["zero3_bucket_want"] < 10**7  # a LoRA of the tiny model, not DeepSpeed's 5e8
    oom = report["zero2_oom"]
    assert oom["steps"] == 3 and oom["stopped_by"] == "steps" and oom["losses_finite"]
    assert oom["out_of_memory"] == 1 and oom["batch_tokens"] == 2048
