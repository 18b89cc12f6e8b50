"""Run under the deepspeed launcher by tests/ttt/test_zero3.py (2 ranks, gloo, ZeRO-3): drives the
lockstep pieces directly, where the tiny random model's garbage output would leave them unexercised in
a pipeline run (it never writes a parseable grid, so nothing gets scored). Rank 0 writes what it saw
to the JSON file named by the last argument.

    deepspeed --num_gpus 2 --no_local_rank tests/ttt/zero3_ranks.py MODEL_DIR OUT.json
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch


def main(model_dir: str, out: str) -> None:
    from augment.loo import build_samples
    from augment.sets import get_set
    from augment.tasks import load_dataset, select
    from solve.placement.ds_rank import init_ranks
    from ttt.config import LoraConfig, ModelConfig, TrainConfig
    from ttt.decoding.sample import generate
    from ttt.ds import DeepSpeedRunner, partition_at_load
    from ttt.lora import gathered_for_update, lora_parameters, reset_adapter, wrap_lora
    from ttt.models import load_model
    from ttt.nll import target_nll
    from ttt.prompts import grid_scoring_item
    from ttt.train import adapt

    rank, world, _, _ = init_ranks(60)
    keep = partition_at_load(3, 1)  # noqa: F841 (must outlive the load)
    model, tokenizer = load_model(ModelConfig(source=model_dir, device="cpu"))
    model = wrap_lora(model, LoraConfig(r=4))
    runner = DeepSpeedRunner(model, TrainConfig(), 3)
    local_numel = sum(p.numel() for p in model.parameters())  # partitioned: a share of the weights

    task = select(load_dataset("arc-agi-1/evaluation").tasks, ["00576224"])[0]
    samples, _ = build_samples(task, get_set("geometric"), 4, np.random.default_rng(0))
    reset_adapter(model, 0)
    trained = adapt(model, tokenizer, samples, TrainConfig(steps=2, lr=1e-2, warmup_steps=0, batch_tokens=2048, gradient_checkpointing=True), runner=runner)

    # 5 scoring items on 2 ranks, one per batch: rank 0 scores 3, rank 1 scores 2 plus a dummy forward.
    items = [grid_scoring_item(tokenizer, task.train, task.test_inputs[0], p.output) for p in task.train]
    items += [grid_scoring_item(tokenizer, task.train[:1], p.input, p.output) for p in task.train]
    items = items[:5]
    split = target_nll(model, tokenizer, items, batch_tokens=1, ranks=runner)
    whole = target_nll(model, tokenizer, items, batch_tokens=1)  # every rank scores all: trivially in step

    # Greedy generation, one prompt per batch: rank 0 has 3 prompts, rank 1 the first of them only.
    prompts = [item[0][-64:] for item in items[:3]]
    mine = prompts if rank == 0 else prompts[:1]
    texts = generate(model, tokenizer, mine, 1, 6, 0.0, 1.0, 1, 0, None, runner)

    reset_adapter(model, 7)
    params = lora_parameters(model)
    with gathered_for_update(params):
        sums = [float(p.detach().double().abs().sum()) for p in params]
    everyone = runner.all_gather([{"rank": rank, "local_numel": local_numel, "texts": texts}])
    if rank == 0:
        result = {"split": split, "whole": whole, "ranks": everyone, "lora_abs_sums": sums, "losses": trained.losses}
        with open(out, "w") as f:
            json.dump(result, f)
    torch.distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
