"""A corpus of synthetic tasks with their programs, written in Kaggle format; deterministic and shardable.

Slots 0..n-1 each yield at most one task, `synth-s{seed}-{index:07d}`. Everything about slot i comes
from a numpy Generator seeded with (seed, i): where its inputs come from, whether its program keeps
the input's shape (SHAPE_SHARE of the slots, ARC-AGI-1 training's share), the inputs, and the
programs tried on them until one is accepted (or MAX_ATTEMPTS fail: the slot stays empty).
ARC inputs are drawn once per slot; generated inputs are drawn for each program, in the style that
shows its concept (inputs.concept_style).

Inputs come from a *family*: one clean ARC-AGI-1 training task (its grids), or a generated input set
of slot i alone. A behaviour duplicate is a program with the same outputs on the same inputs as one
accepted earlier in the same family; identical inputs only occur within a family, so this is the
same as comparing with every earlier accepted task. Shards own whole families (ARC task index, or
slot index for generated inputs, modulo the shard count) and visit their slots in index order, so
each shard sees exactly the history the unsharded run sees for its families: the shards' outputs
partition the unsharded output exactly.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from augment.contamination import clean_training, evaluation_grid_keys, leaks
from augment.tasks import Task
from solve.dsl.core import background_of
from solve.synth.check import OBJECT_PRIMS, REASONS, judge
from solve.synth.inputs import STYLES, arc_inputs, arc_pool, concept_style, draw_look, styled_inputs
from solve.synth.program import random_program

SOURCE_DATASET = "arc-agi-1/training"  # never an evaluation set: clean_training refuses those
ARC_SHARE = 0.5  # fraction of slots whose inputs come from ARC training grids
MAX_ATTEMPTS = 60  # programs tried per slot before it is left empty
MIN_INPUTS = 4  # 3 train + 1 test
SHAPE_SHARE = 0.655  # ARC-AGI-1 training tasks whose outputs all keep their input's shape: 262 of 400
MAX_ARC_SIDE = 12  # larger ARC grids make tasks longer than the pretraining prompt holds


@dataclass(frozen=True)
class Sources:
    """What every slot draws from: clean ARC training tasks, their grid pools, and the evaluation grid keys."""

    arc_tasks: tuple[Task, ...]
    pools: tuple[tuple[np.ndarray, ...], ...]
    eval_keys: frozenset[bytes]
    clean_report: dict


def load_sources() -> Sources:
    """Clean ARC-AGI-1 training tasks (sharing no grid with any evaluation set) and the evaluation keys."""
    tasks, report = clean_training(SOURCE_DATASET)
    usable = [(t, tuple(pool)) for t in tasks if len(pool := arc_pool(t, MAX_ARC_SIDE)) >= MIN_INPUTS]
    return Sources(tuple(t for t, _ in usable), tuple(p for _, p in usable), evaluation_grid_keys(), report)


@dataclass(frozen=True)
class Accepted:
    """One accepted task with its program."""

    index: int
    train: tuple[tuple[np.ndarray, np.ndarray], ...]
    test: tuple[tuple[np.ndarray, np.ndarray], ...]
    source: str
    depth: int
    primitives: tuple[str, ...]
    origin: str  # "arc:<task id>" or "generated:<style>"


def route(seed: int, index: int, n_arc: int) -> tuple[np.random.Generator, tuple[str, int]]:
    """The slot's generator and its family: ('arc', ARC task number) or ('gen', slot index)."""
    rng = np.random.default_rng([seed, index])
    if n_arc and rng.random() < ARC_SHARE:
        return rng, ("arc", int(rng.integers(n_arc)))
    return rng, ("gen", index)


def owner(family: tuple[str, int], n_shards: int) -> int:
    """The shard that generates every slot of a family."""
    return family[1] % n_shards


def _palette(inputs: list[np.ndarray]) -> tuple[int, ...]:
    """Colors to draw constants from: those in at least half the inputs, most widespread first."""
    seen = Counter(c for g in inputs for c in np.flatnonzero(np.bincount(g.ravel(), minlength=10)).tolist())
    common = [c for c, k in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])) if 2 * k >= len(inputs)]
    return tuple(common or sorted(seen))


def make_slot(
    index: int,
    rng: np.random.Generator,
    family: tuple[str, int],
    sources: Sources,
    seen: set[bytes],
    rejects: Counter,
) -> Accepted | None:
    """Draw the slot's inputs (ARC) or look (generated), then programs until one is accepted; count
    every reject by reason."""
    keep_shape = bool(rng.random() < SHAPE_SHARE)
    # Three pairs mostly: with a test input they fill the prompt budget at sides of ~10 (check.MAX_PROMPT_CELLS).
    n_train, n_test = 3 + int(rng.random() < 0.25), 1
    if family[0] == "arc":
        inputs = arc_inputs(rng, list(sources.pools[family[1]]), n_train + n_test)
        origin = f"arc:{sources.arc_tasks[family[1]].id}"
        if len(inputs) < n_train + n_test:  # a small pool: one test input, as many train as there are
            n_train = len(inputs) - 1
        if n_train < MIN_INPUTS - 1:
            return None
        palette = _palette(inputs)
        backgrounds = {background_of(g) for g in inputs}
        bg = backgrounds.pop() if len(backgrounds) == 1 else None
    else:
        bg, colors = draw_look(rng)
        palette = (bg, *colors)
    for _ in range(MAX_ATTEMPTS):
        program = random_program(rng, palette, keep_shape=keep_shape, background=bg)
        if family[0] == "gen":  # inputs that show the program's concept
            style = concept_style(program.primitives, OBJECT_PRIMS) or STYLES[int(rng.integers(len(STYLES)))]
            inputs = styled_inputs(rng, n_train + n_test, style, bg, colors, sources.eval_keys)
            origin = f"generated:{style}"
            if len(inputs) < n_train + n_test:
                rejects["few_inputs"] += 1
                continue
        verdict = judge(program, inputs, n_train, sources.eval_keys, seen, keep_shape)
        if verdict.reason is not None:
            rejects[verdict.reason] += 1
            continue
        seen.add(verdict.key)
        program = verdict.program
        pairs = tuple(zip(inputs, verdict.outputs))
        return Accepted(index, pairs[:n_train], pairs[n_train:], program.source(), program.depth, tuple(program.primitives), origin)
    return None


def task_id(seed: int, index: int) -> str:
    return f"synth-s{seed}-{index:07d}"


def _write(out_dir: Path, seed: int, tasks: list[Accepted]) -> None:
    challenges, solutions = {}, {}
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "programs.jsonl", "w", encoding="utf-8") as programs:
        for t in tasks:
            tid = task_id(seed, t.index)
            challenges[tid] = {
                "train": [{"input": i.tolist(), "output": o.tolist()} for i, o in t.train],
                "test": [{"input": i.tolist()} for i, _ in t.test],
            }
            solutions[tid] = [o.tolist() for _, o in t.test]
            record = {"task_id": tid, "source": t.source, "depth": t.depth, "primitives": list(t.primitives), "origin": t.origin}
            programs.write(json.dumps(record) + "\n")
    (out_dir / "challenges.json").write_text(json.dumps(challenges, separators=(",", ":")), encoding="utf-8")
    (out_dir / "solutions.json").write_text(json.dumps(solutions, separators=(",", ":")), encoding="utf-8")


@dataclass
class _ShardRun:
    """What one shard's loop produced: its accepted tasks in slot order, rejects, slots owned and left empty."""

    accepted: list[Accepted]
    rejects: Counter
    owned: int
    empty_slots: int


def _run_shard(n: int, seed: int, shard: tuple[int, int], sources: Sources, advance: Callable[[], None]) -> _ShardRun:
    """The slots 0..n-1 that `shard` owns, in index order (calls `advance` after every slot)."""
    i_shard, n_shards = shard
    run = _ShardRun([], Counter(), 0, 0)
    seen: dict[tuple[str, int], set[bytes]] = {}
    for index in range(n):
        rng, family = route(seed, index, len(sources.arc_tasks))
        if owner(family, n_shards) == i_shard:
            run.owned += 1
            task = make_slot(index, rng, family, sources, seen.setdefault(family, set()), run.rejects)
            if task is None:
                run.empty_slots += 1
            else:
                run.accepted.append(task)
        advance()
    return run


_FORKED_SOURCES: Sources | None = None  # the parent's sources, inherited by forked workers (not pickled)


def _forked_shard(args: tuple[int, int, tuple[int, int]]) -> _ShardRun:
    n, seed, shard = args
    assert _FORKED_SOURCES is not None
    return _run_shard(n, seed, shard, _FORKED_SOURCES, lambda: None)


def _run_workers(n: int, seed: int, shard: tuple[int, int], workers: int, sources: Sources) -> _ShardRun:
    """Shard `shard` split over `workers` processes: sub-shard j is shard i + s*j of s*workers, which
    owns exactly the families of shard i whose number is j mod workers after dividing by s; merged in
    slot order, the result is the one-process result (each family's history stays in one process)."""
    global _FORKED_SOURCES
    import multiprocessing

    i_shard, n_shards = shard
    jobs = [(n, seed, (i_shard + n_shards * j, n_shards * workers)) for j in range(workers)]
    _FORKED_SOURCES = sources
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            runs = pool.map(_forked_shard, jobs)
    finally:
        _FORKED_SOURCES = None
    merged = _ShardRun(sorted((t for r in runs for t in r.accepted), key=lambda t: t.index), Counter(), 0, 0)
    for r in runs:
        merged.rejects.update(r.rejects)
        merged.owned += r.owned
        merged.empty_slots += r.empty_slots
    return merged


def generate_corpus(
    n: int,
    seed: int,
    out_dir: str | Path,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    sources: Sources | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Generate the tasks of slots 0..n-1 that belong to `shard` (i, of n shards) into out_dir:
    challenges.json and solutions.json (Kaggle format) and programs.jsonl; `workers` processes share
    the work (the same files as one). Returns a report: accepted, attempted, rejects by reason,
    seconds, tasks/s, and the contamination check."""
    i_shard, n_shards = shard
    if not (n_shards >= 1 and 0 <= i_shard < n_shards):
        raise ValueError(f"shard {i_shard}/{n_shards}: need 0 <= i < n")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    sources = sources or load_sources()
    loaded = time.perf_counter()
    if workers > 1:  # no per-slot progress across processes
        run = _run_workers(n, seed, shard, workers, sources)
    elif progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns) as bar:
            job = bar.add_task("slots", total=n)
            run = _run_shard(n, seed, shard, sources, lambda: bar.advance(job))
    else:
        run = _run_shard(n, seed, shard, sources, lambda: None)
    accepted, rejects, owned, empty_slots = run.accepted, run.rejects, run.owned, run.empty_slots
    generated = time.perf_counter()
    _write(Path(out_dir), seed, accepted)

    written = [g for t in accepted for pair in (*t.train, *t.test) for g in pair]
    leaked = sum(leaks(g) for g in written)
    seconds = time.perf_counter() - start
    gen_seconds = generated - loaded
    n_rejects = sum(rejects.values())
    return {
        "n": n,
        "seed": seed,
        "shard": f"{i_shard}/{n_shards}",
        "workers": workers,
        "slots": owned,
        "accepted": len(accepted),
        "empty_slots": empty_slots,
        "attempted": len(accepted) + n_rejects,
        "rejects": {r: rejects.get(r, 0) for r in REASONS},
        "depths": dict(sorted(Counter(t.depth for t in accepted).items())),
        "origins": dict(Counter(t.origin.split(":")[0] for t in accepted)),
        "seconds": round(seconds, 3),
        "load_seconds": round(loaded - start, 3),
        "generate_seconds": round(gen_seconds, 3),
        # Generation rate: the one-time load of the ARC datasets is left out (see load_seconds).
        "tasks_per_s": round(len(accepted) / gen_seconds, 1) if gen_seconds > 0 else None,
        "contamination": {
            "evaluation_grids": len(sources.eval_keys),
            "source": {k: v for k, v in sources.clean_report.items() if k != "excluded_ids"},
            "rejected_contaminated": rejects.get("contaminated", 0),
            "written_grids_checked": len(written),
            "written_contaminated": leaked,
            "clean": leaked == 0,
        },
        "out_dir": str(out_dir),
    }


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"shard {text}: need 0 <= i < n")
    return i, n


def main(argv: list[str] | None = None) -> int:
    """`python -m solve.synth.corpus --n N --seed S --out DIR [--shard i/n]`: write a corpus, print the report."""
    parser = argparse.ArgumentParser(prog="python -m solve.synth.corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, required=True, help="number of slots (each yields at most one task)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: generate only shard i of n")
    parser.add_argument("--workers", type=int, default=1, help="processes (the same files as one)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    report = generate_corpus(args.n, args.seed, args.out, args.shard, progress=not args.no_progress, workers=args.workers)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
