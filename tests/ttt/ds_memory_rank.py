"""Run by tests/ttt/test_ds_memory.py as one DeepSpeed rank (gloo on the CPU, no launcher): ZeRO-3 builds a
bf16 model in bf16 and sizes its buckets to the LoRA; ZeRO-2 training survives an out-of-memory micro-batch.
Writes what it saw to the JSON file named by the last argument.

    python tests/ttt/ds_memory_rank.py OUT.json
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch


def main(out: str) -> None:
    from augment.loo import build_samples
    from augment.sets import get_set
    from augment.tasks import load_dataset, select
    from solve.placement.ds_rank import init_ranks
    from ttt.config import LoraConfig, ModelConfig, TrainConfig
    from ttt.ds import DeepSpeedRunner, bucket_elements, partition_at_load
    from ttt.lora import lora_parameters, reset_adapter, wrap_lora
    from ttt.models import load_model
    from ttt.train import adapt

    report = {}
    init_ranks(60, 30)
    keep = partition_at_load(3, 1, bf16=True)
    model, _ = load_model(ModelConfig(source="random:tiny", device="cpu", dtype="bfloat16"))
    report["zero3_dtypes"] = sorted({str(p.ds_tensor.dtype) for p in model.parameters()})
    model = wrap_lora(model, LoraConfig(r=4))
    runner = DeepSpeedRunner(model, TrainConfig(), 3, object_timeout_s=60)
    zero = runner.engine._config.zero_config
    trainable = sum(getattr(p, "ds_numel", p.numel()) for p in lora_parameters(model))
    report["zero3_buckets"] = [int(zero.reduce_bucket_size), int(zero.allgather_bucket_size)]
    report["zero3_bucket_want"] = bucket_elements(trainable)
    report["zero3_bf16"] = bool(runner.engine.bfloat16_enabled())
    del runner, model, keep

    model, tokenizer = load_model(ModelConfig(source="random:tiny", device="cpu"))
    model = wrap_lora(model, LoraConfig(r=4))
    cfg = TrainConfig(steps=3, lr=1e-2, warmup_steps=0, batch_tokens=4096, grad_accum=2)
    runner = DeepSpeedRunner(model, cfg, 2, object_timeout_s=60)
    task = select(load_dataset("arc-agi-1/evaluation").tasks, ["00576224"])[0]
    samples, _ = build_samples(task, get_set("geometric"), 4, np.random.default_rng(0))
    forwards = []

    def oom_once(_module, args, kwargs):
        forwards.append(1)
        if len(forwards) == 2:  # the second micro-batch's forward: after a first one's backward went through
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    model.get_base_model().get_decoder().register_forward_pre_hook(oom_once, with_kwargs=True)
    reset_adapter(model, 0)
    result = adapt(model, tokenizer, samples, cfg, runner=runner)
    report["zero2_oom"] = {"steps": result.steps, "stopped_by": result.stopped_by, "out_of_memory": result.out_of_memory,
                           "batch_tokens": result.batch_tokens, "losses_finite": bool(np.isfinite(result.losses).all())}
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[-1])
