"""Training the LoRA adapter data-parallel across ranks with a DeepSpeed ZeRO engine (stage 2 or 3).

`DeepSpeedRunner` is a `ttt.train.StepRunner`: `ttt.train.adapt` runs its unchanged loop and calls
`train_step` with `engine.backward` / `engine.step`. The engine is built once per process over the
LoRA weights and kept for every task; between tasks the adapter is reset in place (as in one
process), ZeRO's fp32 master copy is refreshed from it and the AdamW moments are dropped, so no task
sees another's optimizer state and the base model is never reloaded.

Matches the single-process optimizer: torch AdamW (lr, weight decay), the same warmup + decay
(`lr_factor`, set on the param groups before each step) and gradient clipping at MAX_GRAD_NORM
(DeepSpeed's `gradient_clipping`, applied to the global norm after the all-reduce).

ZeRO-2 partitions only the (tiny) optimizer state: every rank holds the whole model and samples on its
own. ZeRO-3 also partitions the weights, base and LoRA, so a model that does not fit one card trains:
  - the model is partitioned while it loads (`partition_at_load`: transformers builds it under
    `deepspeed.zero.Init`), so no rank ever holds all of it;
  - `ttt.lora.reset_adapter` gathers the LoRA weights, re-initializes them on rank 0 and re-partitions;
  - every forward all-gathers weights layer by layer, so ranks must run the same number of forwards:
    `lockstep` is True and sampling (`ttt.decoding.sample`) and scoring (`ttt.nll.target_nll`) pad a rank's
    share with dummy batches and generate with `synced_gpus`, stopping only when all ranks agree.

Requires torch.distributed to be initialized (see `solve.placement.ds_rank`).
"""

from __future__ import annotations

from typing import Any

import torch

from ttt.config import TrainConfig
from ttt.lora import lora_parameters
from ttt.train import MAX_GRAD_NORM, lr_factor

# DeepSpeed's default buckets hold 5e8 elements (reduce, all-gather): 1-2 GB per rank allocated for a LoRA
# of a few million weights. Ours hold the trainable weights, within these bounds.
MIN_BUCKET, MAX_BUCKET = 2**20, 5 * 10**8


def bucket_elements(trainable: int | None) -> int:
    """Elements per ZeRO communication bucket for `trainable` weights (None: not known yet, the upper bound)."""
    return MAX_BUCKET if trainable is None else max(MIN_BUCKET, min(MAX_BUCKET, trainable))


def ds_config(zero_stage: int, grad_accum: int, bf16: bool = False, trainable: int | None = None) -> dict[str, Any]:
    """The engine's config. `bf16`: the model's weights are bfloat16 (without this section ZeRO-3's
    `zero.Init` builds every weight in fp32: 28 GB for a 7B model instead of 14). `trainable`: the
    weights being trained, which size the communication buckets."""
    bucket = bucket_elements(trainable)
    zero: dict[str, Any] = {"stage": zero_stage, "reduce_bucket_size": bucket, "allgather_bucket_size": bucket}
    if zero_stage == 3:
        zero["stage3_prefetch_bucket_size"] = min(bucket, 5 * 10**7)  # gathers of the (frozen) base: DeepSpeed's default
    return {
        "train_micro_batch_size_per_gpu": 1,  # we feed the engine ourselves; only the product is checked
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": MAX_GRAD_NORM,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,  # a client torch AdamW: the same optimizer as one process
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def partition_at_load(zero_stage: int, grad_accum: int, bf16: bool = False) -> Any:
    """For ZeRO-3: an object to keep alive while (and after) the model loads, so that transformers builds
    it partitioned under `deepspeed.zero.Init` (from_pretrained and from_config both look for it), in
    bfloat16 when `bf16`; None for ZeRO-2, which loads the whole model on every rank."""
    if zero_stage != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(ds_config(zero_stage, grad_accum, bf16))


class DeepSpeedRunner:
    """One rank's view of data-parallel LoRA training; also the rank's collectives for the pipeline."""

    def __init__(self, model: Any, cfg: TrainConfig, zero_stage: int, object_timeout_s: float | None = None):
        """`object_timeout_s`: the object collectives (gathering samples and candidates, where a rank may
        wait minutes for a slower one) get their own gloo group with this timeout, so the default group's
        timeout can be the short one a training step needs."""
        import datetime

        import deepspeed
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.grad_accum = cfg.grad_accum
        self.zero_stage = zero_stage
        # ZeRO-3 gathers weights inside every forward: all ranks must run the same forwards.
        self.lockstep = zero_stage == 3
        self.objects = None if object_timeout_s is None else dist.new_group(
            backend="gloo", timeout=datetime.timedelta(seconds=object_timeout_s))
        params = lora_parameters(model)
        trainable = sum(getattr(p, "ds_numel", p.numel()) for p in params)
        bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=params, optimizer=self.optimizer,
            config=ds_config(zero_stage, cfg.grad_accum, bf16, trainable),
        )
        self.cfg = cfg
        self.micro = 0  # micro-batches seen in the current optimizer step
        self.steps = 0  # optimizer steps taken in the current task

    # --- StepRunner ------------------------------------------------------------------------------

    def start(self, model: Any, params: list[torch.nn.Parameter], cfg: TrainConfig) -> None:
        if cfg.grad_accum != self.grad_accum:
            raise ValueError(f"train.grad_accum changed from {self.grad_accum} to {cfg.grad_accum}: the engine is built for one value")
        self.cfg, self.micro, self.steps = cfg, 0, 0
        self.engine.optimizer.refresh_fp32_params()  # the adapter was reset in place: ZeRO's master copy follows
        self.optimizer.state.clear()  # fresh AdamW moments and step counts for the new task
        self.engine.zero_grad()

    def backward(self, loss: torch.Tensor) -> None:
        self.micro += 1
        # train_step calls backward once per micro-batch and step once: mark the last one the boundary,
        # where ZeRO reduces and partitions the gradients.
        self.engine.set_gradient_accumulation_boundary(self.micro == self.grad_accum)
        self.engine.backward(loss, scale_wrt_gas=False)  # train_step already divides by the step's tokens

    def step(self) -> None:
        lr = self.cfg.lr * lr_factor(self.steps, self.cfg)
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        self.engine.step()
        self.micro, self.steps = 0, self.steps + 1

    def mean(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        self.dist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        t = torch.tensor([int(flag)], dtype=torch.int64, device=self._device())
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return bool(t.item())

    def finish(self) -> None:
        self.engine.zero_grad()
        self.optimizer.state.clear()  # the AdamW moments: start() clears them for the next task anyway

    def drop_step(self) -> None:
        self.engine.zero_grad()
        self.micro = 0

    # --- sampling split across ranks ------------------------------------------------------------

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's `items` concatenated on rank 0 (rank order); [] on the other ranks."""
        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        self.dist.gather_object(items, out, dst=0, group=self.objects)
        return [x for part in out for x in part] if out is not None else []

    def all_gather(self, items: list[Any]) -> list[Any]:
        """Every rank's `items` concatenated in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, items, group=self.objects)
        return [x for part in out for x in part]

    def max(self, value: int) -> int:
        t = torch.tensor([value], dtype=torch.int64, device=self._device())
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return int(t.item())

    def _device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
        return torch.device("cuda", torch.cuda.current_device()) if self.dist.get_backend() == "nccl" else torch.device("cpu")
