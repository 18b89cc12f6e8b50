"""Leave-one-out training samples: hold one train pair out as the target, keep the rest as context.

Each leave-one-out task is then augmented (same transform on every grid of the sample) until at
least `n_samples` distinct samples exist or the set has no more distinct ones to give (symmetric
grids make many duplicates). The report says how many were generated, kept and dropped, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from augment.sets import AugmentSet, augmentation_stream
from augment.tasks import Pair, Task
from augment.transforms import Augmentation

# Give up on finding new distinct samples after this many draws per requested sample:
# a fully symmetric task under 'geometric' has only n distinct samples, whatever we draw.
_MAX_DRAWS_PER_SAMPLE = 8


@dataclass(frozen=True)
class Sample:
    """One training example: context pairs, a query input and its target output, all augmented."""

    task_id: str
    context: tuple[Pair, ...]
    query: np.ndarray
    target: np.ndarray
    augmentation: Augmentation
    held_out: int  # index of the original train pair used as query/target

    def key(self) -> bytes:
        """Identity of the sample's content, for dedup (shapes included: 2x3 and 3x2 differ)."""
        grids = [g for p in self.context for g in (p.input, p.output)] + [self.query, self.target]
        return b"|".join(bytes(g.shape) + g.tobytes() for g in grids)


@dataclass
class BuildReport:
    generated: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return {"generated": self.generated, "kept": self.kept, "dropped": dict(self.dropped), "notes": list(self.notes)}


def _apply(aug: Augmentation, task_id: str, context: tuple[Pair, ...], held: Pair, held_out: int) -> Sample:
    order = aug.order if aug.order is not None else range(len(context))
    ctx = tuple(Pair(aug.apply_grid(context[i].input), aug.apply_grid(context[i].output)) for i in order)
    return Sample(task_id, ctx, aug.apply_grid(held.input), aug.apply_grid(held.output), aug, held_out)


def leave_one_out(task: Task, allow_single_pair: bool = False) -> tuple[list[tuple[tuple[Pair, ...], Pair, int]], list[str]]:
    """(context, held-out pair, index) for each train pair, plus notes about fallbacks."""
    n = len(task.train)
    if n >= 2:
        return [(task.train[:i] + task.train[i + 1 :], task.train[i], i) for i in range(n)], []
    if allow_single_pair:
        note = f"task {task.id} has one train pair: it is used as both context and target (allow_single_pair)"
        return [(task.train, task.train[0], 0)], [note]
    return [], [f"task {task.id} has one train pair: no leave-one-out sample (set allow_single_pair to use it anyway)"]


def build_samples(
    task: Task,
    spec: AugmentSet,
    n_samples: int,
    rng: np.random.Generator,
    permute_background: bool = False,
    allow_single_pair: bool = False,
) -> tuple[list[Sample], BuildReport]:
    """At least `n_samples` distinct augmented leave-one-out samples, or as many as exist."""
    report = BuildReport()
    bases, report.notes = leave_one_out(task, allow_single_pair)
    if not bases:
        return [], report
    target = max(n_samples, len(bases))
    streams = [augmentation_stream(spec, len(ctx), rng, permute_background) for ctx, _, _ in bases]
    seen: set[bytes] = set()
    samples: list[Sample] = []
    live = list(range(len(bases)))
    draws_left = target * _MAX_DRAWS_PER_SAMPLE
    # Round-robin over held-out pairs so every pair is a target about equally often.
    while live and len(samples) < target and draws_left > 0:
        for b in list(live):
            aug = next(streams[b], None)
            if aug is None:  # the set has no more augmentations (e.g. 'none')
                live.remove(b)
                continue
            draws_left -= 1
            report.generated += 1
            ctx, held, idx = bases[b]
            sample = _apply(aug, task.id, ctx, held, idx)
            if (k := sample.key()) in seen:
                report.drop("duplicate (symmetric grids)")
                continue
            seen.add(k)
            samples.append(sample)
            if len(samples) >= target:
                break
    report.kept = len(samples)
    if report.kept < n_samples:
        report.notes.append(f"only {report.kept} distinct samples exist under set '{spec.name}' (asked for {n_samples})")
    return samples, report
