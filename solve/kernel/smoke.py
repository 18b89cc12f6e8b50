"""The kernel's smoke test: before the main run, every GPU trains one LoRA step of a tiny random model and samples a
few tokens, each in a child process of its own, all at once, within SMOKE_TIMEOUT_S.

Why: the Kaggle image's CUDA torch, driver and our pinned transformers/peft meet for the first time there. A broken
combination (an import error, a kernel the card lacks, a peft API change) shows in 30 seconds, named per device, in
the log and in DIR/timeline.jsonl (events `start`/`finish` of task `smoke`, worker = the device's index, so the
timeline plot draws them before the first task), instead of as failed tasks hours later. The result is reported, never
acted on: the main run's own fault handling (worker replacement, retries, placeholders) still decides.

    python -m solve.kernel.smoke DEVICE      # the child: DEVICE 'cuda' (its CUDA_VISIBLE_DEVICES set) or 'cpu'
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

SMOKE_TIMEOUT_S = 30.0
SMOKE_TASK_ID = "smoke"


class _Silent:
    """Stands in for a tokenizer: the tiny random model has none, and no stop rule reads text here."""

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return ""


def smoke(device: str) -> dict[str, Any]:
    """One LoRA training step and one sample (2 continuations of 8 tokens) of the tiny random model on `device`."""
    start = time.perf_counter()
    import torch

    from ttt.bench import build_model
    from ttt.config import LoraConfig
    from ttt.decoding.decode import sample
    from ttt.lora import lora_parameters, wrap_lora
    from ttt.models import pick_dtype
    from ttt.nll import collate
    from ttt.prompts import IGNORE
    from ttt.train import train_step

    dev = torch.device(device)
    torch.manual_seed(0)
    model = wrap_lora(build_model("tiny", dev, pick_dtype("bfloat16", dev)), LoraConfig(r=8, alpha=16))
    model.train()
    opt = torch.optim.AdamW(lora_parameters(model), lr=1e-4)
    ids = torch.randint(100, model.get_base_model().config.vocab_size - 100, (2, 64), generator=torch.Generator().manual_seed(0)).tolist()
    batch = collate([(r, [IGNORE] + r[1:]) for r in ids], pad_id=0).to(dev)

    def step() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    loss = train_step(model, [batch], lambda value: value.backward(), step)
    out = sample(model, _Silent(), ids[:1], 2, 8, 0.8, 0.95, 0, [], 0)
    row: dict[str, Any] = {"loss": loss, "sampled_tokens": sum(len(d.ids) for r in out for d in r), "seconds": time.perf_counter() - start}
    if dev.type == "cuda":
        row |= {"gpu": torch.cuda.get_device_name(dev), "peak_gib": torch.cuda.max_memory_allocated(dev) / 2**30}
    return row


def _devices() -> list[tuple[int, str | None]]:
    """(index, physical CUDA id) per visible GPU, or [(0, None)]: the CPU. Physical ids map through this process's own
    CUDA_VISIBLE_DEVICES, as the per_gpu workers' do."""
    import torch

    gpus = torch.cuda.device_count()
    if not gpus:
        return [(0, None)]
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    physical = visible if len(visible) >= gpus else [str(i) for i in range(gpus)]
    return [(i, physical[i]) for i in range(gpus)]


def _event(timeline: Path, event: str, worker: int, info: dict[str, Any]) -> None:
    with open(timeline, "a") as f:
        f.write(json.dumps({"task_id": SMOKE_TASK_ID, "event": event, "wall": time.time(), "worker": worker, **info}) + "\n")


def run_smoke(run_dir: Path, log: Callable[[str], None], timeout_s: float = SMOKE_TIMEOUT_S) -> list[dict[str, Any]]:
    """The smoke test on every device at once, within `timeout_s`; one row per device (status ok / failed / timeout),
    logged and written to run_dir/timeline.jsonl. Never raises for a device's failure."""
    root = Path(__file__).resolve().parents[2]
    timeline = Path(run_dir) / "timeline.jsonl"
    procs = []
    for index, physical in _devices():
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p))
        if physical is not None:
            env["CUDA_VISIBLE_DEVICES"] = physical
        _event(timeline, "start", index, {"device": physical or "cpu"})
        proc = subprocess.Popen([sys.executable, "-m", "solve.kernel.smoke", "cuda" if physical is not None else "cpu"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append((index, physical or "cpu", proc))
    deadline = time.monotonic() + timeout_s
    rows = []
    for index, device, proc in procs:
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            row: dict[str, Any] = {"status": "timeout", "error": f"not done in {timeout_s:.0f} s"}
        else:
            last = out.strip().splitlines()[-1] if out.strip() else ""
            if proc.returncode == 0 and last.startswith("{"):
                row = {"status": "ok", **json.loads(last)}
            else:
                row = {"status": "failed", "error": f"exit {proc.returncode}: {err.strip()[-800:]}"}
        row["device"] = device
        rows.append(row)
        _event(timeline, "finish", index, row)
        detail = f"loss {row['loss']:.2f}, {row['seconds']:.1f} s" if row["status"] == "ok" else row["error"]
        log(f"smoke test on {device}: {row['status']} ({detail})")
    return rows


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    print(json.dumps(smoke(device)), flush=True)


if __name__ == "__main__":
    main()
