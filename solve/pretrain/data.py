"""Pretraining data: synthetic corpora (tasks + programs) and contamination-filtered real tasks, as examples.

Two kinds of example, built with the same prompt code as TTT and inference (ttt.prompts):
  - "program" (code from examples): the task's train pairs and test inputs -> its program;
  - "grid" (output from examples): context pairs + a query input -> the query's output grid.
A "program" example with `attempts` is a repair sample (solve.pretrain.repair): test-time search's revision
prompt showing a broken copy of the program and its outcomes -> the program.
Synthetic tasks give one of each (the grid one asks for a test output). Real training tasks give
augmented leave-one-out grid examples only (they have no programs). A fixed set of synthetic tasks is
held out of training for evaluation, chosen by id hash (not by file order); a checkpoint pins it and the
training tasks, so a resumed run cannot silently train on another corpus. Every task and augmented grid is
checked against the evaluation sets here, whoever made the corpus.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from augment.contamination import clean_training, contaminated, leaks
from augment.gridtext import grid_to_text
from augment.loo import build_samples
from augment.sets import get_set
from augment.tasks import Pair, Task, TaskError, load_challenges
from ttt.prompts import IGNORE, Attempted, Encoded, encode_revision_sample, encode_sample, program_answer

Kind = Literal["program", "grid"]


class CorpusError(ValueError):
    """A corpus directory that cannot be used, naming the directory and the problem."""


@dataclass(frozen=True)
class Example:
    kind: Kind
    context: tuple[Pair, ...]
    query: np.ndarray | None  # the grid example's input; None for programs
    test_inputs: tuple[np.ndarray, ...]  # shown in program prompts, as at inference
    answer: str  # program_answer(source) or the output grid's text
    origin: str  # task id (and which sample)
    # A repair sample (solve.pretrain.repair): the programs its refinement prompt shows with their outcomes
    # on `context` (ttt.prompts.Attempted); the prompt is then test-time search's revision prompt. () otherwise.
    attempts: tuple[Attempted, ...] = ()


@dataclass
class Corpus:
    """Synthetic tasks (with program sources) from one or more corpus directories."""

    tasks: list[Task] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # task id -> program source
    reports: list[dict[str, Any]] = field(default_factory=list)  # per directory: path, tasks, skipped


def load_corpus(dirs: Sequence[str | Path]) -> Corpus:
    """Tasks and programs of `arc-ttt synth` output directories (challenges.json, solutions.json, programs.jsonl)."""
    corpus = Corpus()
    for d in dirs:
        d = Path(d)
        files = [d / "challenges.json", d / "solutions.json", d / "programs.jsonl"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CorpusError(f"{d}: not a synth corpus (missing {', '.join(missing)}); make one with `arc-ttt synth`")
        try:
            loaded = load_challenges(files[0], files[1])
        except TaskError as e:
            raise CorpusError(f"{d}: {e}") from None
        sources = {}
        for n, line in enumerate(files[2].read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    sources[row["task_id"]] = row["source"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise CorpusError(f"{files[2]}:{n}: bad programs.jsonl line ({e})") from None
        tasks = [t for t in loaded.tasks if t.id in sources]
        made = json.loads((d / "synth_report.json").read_text()) if (d / "synth_report.json").is_file() else {}
        if made.get("contamination", {}).get("clean") is False:
            raise CorpusError(f"{d}: its synth report says it holds evaluation grids; it cannot be trained on")
        # Checked again here, whoever made the files: no task sharing a grid with an evaluation set is trained on.
        clean = [t for t in tasks if not contaminated(t)]
        corpus.tasks += clean
        corpus.sources.update({t.id: sources[t.id] for t in clean})
        corpus.reports.append({"path": str(d), "tasks": len(clean), "skipped": len(loaded.issues) + len(loaded.tasks) - len(tasks),
                               "contaminated_dropped": len(tasks) - len(clean), "command": made.get("command"),
                               "contamination_clean": made.get("contamination", {}).get("clean")})
    return corpus


REAL_PREFIX = "real-"  # ids of real training tasks with programs (`arc-ttt dsl corpus`), and of their views


def split_heldout(tasks: Sequence[Task], n_heldout: int) -> tuple[list[Task], list[Task]]:
    """(train, heldout): the `n_heldout` synthetic tasks with the smallest id hashes are held out. Real
    tasks with programs (and their augmented views) always train: a view held out would be a training
    task turned, and the evaluation says how well *synthetic* programs are found."""
    synthetic = [t for t in tasks if not t.id.startswith(REAL_PREFIX)]
    ranked = sorted(synthetic, key=lambda t: hashlib.sha256(t.id.encode()).digest())
    held = {t.id for t in ranked[:n_heldout]}
    return [t for t in tasks if t.id not in held], [t for t in tasks if t.id in held]


def choose_tasks(corpus: Corpus, max_side: int, n_heldout: int) -> tuple[list[Task], list[Task], int]:
    """(train, heldout, left out as larger than `max_side`): the one split `arc-ttt pretrain` and
    bench/prior_eval.py both use."""
    small = [t for t in corpus.tasks if t.max_side <= max_side]
    train, heldout = split_heldout(small, n_heldout)
    return train, heldout, len(corpus.tasks) - len(small)


def synthetic_examples(tasks: Sequence[Task], sources: dict[str, str]) -> tuple[list[Example], list[Example]]:
    """(program examples, grid examples) of synthetic tasks: one of each per task."""
    programs, grids = [], []
    for t in tasks:
        programs.append(Example("program", t.train, None, t.test_inputs, program_answer(sources[t.id]), t.id))
        if t.test_outputs is not None:
            grids.append(Example("grid", t.train, t.test_inputs[0], (), grid_to_text(t.test_outputs[0]), f"{t.id}:test0"))
    return programs, grids


def real_examples(datasets: Sequence[str], per_task: int, seed: int, max_side: int = 30) -> tuple[list[Example], list[dict[str, Any]]]:
    """Augmented leave-one-out grid examples of real training tasks that share no grid with any evaluation
    set (`augment.contamination.clean_training` enforces it and refuses evaluation sets), with its reports."""
    examples, reports = [], []
    if per_task <= 0:
        return examples, reports
    spec = get_set("geometric+color")
    for name in datasets:
        tasks, report = clean_training(name)
        small = [t for t in tasks if t.max_side <= max_side]
        reports.append({**{k: v for k, v in report.items() if k != "excluded_ids"}, "larger_than_max_side": len(tasks) - len(small)})
        for i, task in enumerate(small):
            samples, _ = build_samples(task, spec, per_task, np.random.default_rng([seed, i]))
            # An augmentation of a clean task can still hit a small evaluation grid (recoloured or turned).
            kept = [s for s in samples[:per_task] if not any(leaks(g) for g in _sample_grids(s))]
            reports[-1]["augmented_dropped"] = reports[-1].get("augmented_dropped", 0) + len(samples[:per_task]) - len(kept)
            examples += [
                Example("grid", s.context, s.query, (), grid_to_text(s.target), f"{task.id}:{s.augmentation.name}:{s.held_out}")
                for s in kept
            ]
    return examples, reports


def _sample_grids(sample: Any) -> list[np.ndarray]:
    return [g for p in sample.context for g in (p.input, p.output)] + [sample.query, sample.target]


def corpus_fingerprint(tasks: Sequence[Task], heldout: Sequence[Task]) -> dict[str, Any]:
    """What a checkpoint pins: the training tasks (a hash of their sorted ids) and the held-out ids."""
    digest = hashlib.sha256("\n".join(sorted(t.id for t in tasks)).encode()).hexdigest()[:16]
    return {"train_tasks": len(tasks), "train_ids_sha256": digest, "heldout_ids": sorted(t.id for t in heldout)}


def encode_examples(tokenizer: Any, examples: Sequence[Example], max_seq_len: int, header: str = "",
                    header_label_share: float = 1.0) -> tuple[list[Encoded], int]:
    """Token ids + labels of each example that fits `max_seq_len` (context pairs dropped as in TTT); and the
    number dropped. Program answers opening with `header` keep the header's loss in `header_label_share`
    of them (chosen by a hash of the example's origin, so the same ones every run); in the rest the
    header's tokens are context, not target: the lesson is the body."""
    out, dropped = [], 0
    for ex in examples:
        if ex.attempts:
            enc = encode_revision_sample(tokenizer, ex.context, ex.attempts, ex.answer, max_seq_len)
        else:
            enc = encode_sample(tokenizer, ex.context, ex.query, ex.answer, kind=ex.kind, max_seq_len=max_seq_len, test_inputs=ex.test_inputs)
        if enc is None:
            dropped += 1
            continue
        if ex.kind == "program" and header and ex.answer.startswith(header) and not _keeps_header(ex.origin, header_label_share):
            enc = mask_header(tokenizer, enc, header)
        out.append(enc)
    return out, dropped


def _keeps_header(origin: str, share: float) -> bool:
    return int.from_bytes(hashlib.sha256(origin.encode()).digest()[:4], "big") < share * 2**32


def mask_header(tokenizer: Any, enc: Encoded, header: str) -> Encoded:
    """`enc` with IGNORE labels on the answer tokens that only spell `header` (the fewest answer tokens
    whose text covers it, less one where the last also holds body text)."""
    start = next(i for i, label in enumerate(enc.labels) if label != IGNORE)
    answer = enc.input_ids[start:]
    lo, hi = 0, len(answer)  # smallest k with decode(answer[:k]) covering the header
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(answer[:mid])) >= len(header):
            hi = mid
        else:
            lo = mid + 1
    k = lo if tokenizer.decode(answer[:lo]) == header else lo - 1  # a token straddling the end stays a target
    labels = list(enc.labels)
    labels[start : start + max(k, 0)] = [IGNORE] * max(k, 0)
    return replace(enc, labels=labels)
