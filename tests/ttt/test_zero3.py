"""ZeRO-3 on 2 CPU ranks (gloo, real DeepSpeed): the pieces that keep partitioned ranks in step.

The pipeline-level runs are in tests/solve/placement/test_placement.py; here tests/ttt/zero3_ranks.py drives
scoring, generation and the adapter reset directly and this test checks what rank 0 reported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_zero3_ranks_stay_in_step_and_agree(tmp_path):
    from ttt.config import LoraConfig, ModelConfig
    from ttt.lora import lora_parameters, reset_adapter, wrap_lora
    from ttt.models import load_model

    model, tokenizer = load_model(ModelConfig(source="random:tiny", device="cpu"))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    full_numel = sum(p.numel() for p in model.parameters())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "out.json"
    cmd = [str(bin_dir / "deepspeed"), "--num_gpus", "2", "--master_port", str(port), "--no_local_rank",
           str(ROOT / "tests" / "ttt" / "zero3_ranks.py"), str(tmp_path / "model"), str(out)]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    finally:  # DeepSpeed's CPU allreduce buffers (~69 MB per rank in /dev/shm) outlive the ranks
        from solve.placement.ds_launch import remove_shm_buffers

        remove_shm_buffers(port)
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())

    # Each rank holds about half of the weights (the rest are gathered per forward).
    for rank in r["ranks"]:
        assert rank["local_numel"] < 0.6 * full_numel, rank
    assert len(r["losses"]) == 2
    # Scoring split across ranks (3 + 2 items, padded to equal forwards) equals scoring all on one.
    assert r["split"] == pytest.approx(r["whole"], rel=1e-5)
    # Generation with padded batches: rank 1's one prompt decodes exactly as rank 0's copy of it.
    texts0, texts1 = r["ranks"][0]["texts"], r["ranks"][1]["texts"]
    assert len(texts0) == 3 and len(texts1) == 1 and texts1[0] == texts0[0]
    # After training, the reset reached the partitioned weights: the same adapter a plain reset gives.
    plain = wrap_lora(load_model(ModelConfig(source=str(tmp_path / "model"), device="cpu"))[0], LoraConfig(r=4))
    reset_adapter(plain, 7)
    expected = [float(p.detach().double().abs().sum()) for p in lora_parameters(plain)]
    assert r["lora_abs_sums"] == pytest.approx(expected, rel=1e-6)
    assert sum(expected) > 0  # A is random, B zero: a real draw, not an all-zero adapter
