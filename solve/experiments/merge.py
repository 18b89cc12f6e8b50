"""Merge run directories (shards of one run, run on several machines) into one run directory.

The merged directory is an ordinary run directory: results.jsonl (every task found), submission.json
(every task found, plus placeholders for tasks of a given task source that no input finished, so a
later `arc-ttt run --out OUT` over the same tasks resumes exactly those), config.yaml, report.md, and
merge.json saying what came from where.

A task finished in two inputs is a duplicate. It is a conflict when the two configs differ, or when
the configs agree but the results (minus timings) do not; conflicts are reported and, unless the
caller keeps the first occurrence, nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from solve.experiments.plan import saved_config
from solve.pipeline.report import report_markdown
from solve.pipeline.rundir import RESUME_SAFE_KEYS, environment_info, read_results
from solve.pipeline.rundir import config_diff as all_config_diff
from solve.select.submission import placeholder_submission, write_submission

# Fields that measure time, not results: two runs of the same config differ only in these. Whether
# the ttt stage trained or loaded its adapter from run.adapter_cache changes time only (same weights).
TIMING_KEYS = frozenset({"seconds", "tokens_per_s", "train_seconds", "plan", "cached", "cache_saved", "cache_error"})


def without_timing(value: Any) -> Any:
    """A record with every timing field removed, at any depth (for comparing results)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


# Config keys that cannot change a result: where each shard kept its adapter cache (the weights it
# loads are bit-identical to training them), and what a run directory lets differ on resume.
NEUTRAL_KEYS = frozenset({"run.adapter_cache"}) | RESUME_SAFE_KEYS


def config_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """Dotted keys whose values differ between two configs, NEUTRAL_KEYS left out."""
    return [k for k in all_config_diff(a, b) if k not in NEUTRAL_KEYS]


class MergeError(ValueError):
    pass


@dataclass
class Merged:
    records: list[dict[str, Any]]
    submission: dict[str, Any]
    config: dict[str, Any] | None
    sources: dict[str, list[str]]  # input dir -> task ids taken from it
    duplicates: list[str] = field(default_factory=list)  # identical results, same config: harmless
    conflicts: list[str] = field(default_factory=list)
    config_differences: list[str] = field(default_factory=list)  # inputs differ in these keys (different tasks)
    missing: list[str] = field(default_factory=list)  # tasks of the source that no input finished

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources, "tasks": len(self.records), "duplicates": self.duplicates,
            "conflicts": self.conflicts, "config_differences": self.config_differences, "missing": self.missing,
        }


def merge_runs(dirs: Sequence[Path], tasks: Sequence[Any] | None = None) -> Merged:
    """Combine the finished tasks of `dirs` (first occurrence kept); `tasks` adds placeholders and order."""
    if not dirs:
        raise MergeError("no run directories given")
    for d in dirs:
        if not (d / "results.jsonl").is_file() and not (d / "submission.json").is_file():
            raise MergeError(f"{d}: not a run directory (no results.jsonl or submission.json)")
    configs = {str(d): saved_config(d) for d in dirs}
    first_cfg = configs[str(dirs[0])]
    kept: dict[str, tuple[str, dict[str, Any]]] = {}  # task id -> (source dir, record)
    m = Merged([], {}, first_cfg, {str(d): [] for d in dirs})
    for d in dirs:
        diff = config_diff(first_cfg, configs[str(d)])
        if diff and d != dirs[0]:
            m.config_differences.append(f"{d} vs {dirs[0]}: {', '.join(diff)}")
        by_id = {r["task_id"]: r for r in read_results(d / "results.jsonl") if "task_id" in r}
        for tid, rec in by_id.items():
            if tid not in kept:
                kept[tid] = (str(d), rec)
                m.sources[str(d)].append(tid)
                continue
            src, old = kept[tid]
            cfg_diff = config_diff(configs[src], configs[str(d)])
            if cfg_diff:
                m.conflicts.append(f"task {tid}: in {src} and {d} with different configs ({', '.join(cfg_diff)})")
            elif without_timing(old) != without_timing(rec):
                m.conflicts.append(f"task {tid}: in {src} and {d} with the same config but different results")
            else:
                m.duplicates.append(f"task {tid}: in {src} and {d} (identical results)")
    if tasks is not None:
        order = [t.id for t in tasks]
        m.submission = placeholder_submission(tasks)
        m.missing = [t for t in order if t not in kept]
        order += sorted(t for t in kept if t not in set(order))  # finished tasks outside the source stay
    else:
        order = sorted(kept)
    m.records = [kept[t][1] for t in order if t in kept]
    for r in m.records:
        m.submission[r["task_id"]] = r["attempts"]
    return m


def write_merged(m: Merged, out: Path, title: str | None = None) -> None:
    """Write `m` as a run directory at `out` (which must not already hold results)."""
    if (out / "results.jsonl").exists():
        raise MergeError(f"{out} already holds results.jsonl; merge into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in m.records)
    write_submission(m.submission, out / "submission.json")
    cfg = {"config": m.config, "environment": environment_info(), "merged_from": list(m.sources)}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (out / "merge.json").write_text(json.dumps(m.to_dict(), indent=2) + "\n")
    notes = [f"- merged from {len(m.sources)} directories: " + ", ".join(f"{d} ({len(ids)} tasks)" for d, ids in m.sources.items())]
    if m.missing:
        notes.append(f"- {len(m.missing)} task(s) finished nowhere (placeholders in submission.json): {', '.join(m.missing)}")
    notes += [f"- conflict kept first: {c}" for c in m.conflicts]
    notes += [f"- config differs: {c}" for c in m.config_differences]
    text = report_markdown(m.records, title or f"arc-ttt merged run: {out.name}")
    (out / "report.md").write_text(text + "\n" + "\n".join(notes) + "\n")


def merge_experiments(dirs: Sequence[Path], tasks: Sequence[Any] | None = None) -> tuple[Any, dict[str, Merged]]:
    """Merge experiment directories (e.g. `ablate --shard i/n` outputs) run by run (point, and seed
    with several seeds).

    Returns the merged manifest and each run's Merged by its directory relative to DIR; every input
    must hold the same points and seeds.
    """
    from solve.experiments.plan import Manifest

    manifests = [Manifest.read(d) for d in dirs]
    first = manifests[0]
    names = [p.name for p in first.points]
    for d, man in zip(dirs, manifests):
        if man.kind != first.kind or [p.name for p in man.points] != names:
            raise MergeError(f"{d}: a {man.kind} over points {[p.name for p in man.points]}, "
                             f"but {dirs[0]} is a {first.kind} over {names}")
        if man.seeds != first.seeds:
            raise MergeError(f"{d}: seeds {man.seeds or 'of the config'}, but {dirs[0]} has {first.seeds or 'those of the config'}")
    merged = {rel: merge_runs([d / rel for d in dirs], tasks) for _, _, rel in first.runs()}
    if tasks is not None:
        task_ids = [t.id for t in tasks]
    else:
        task_ids = sorted({t for man in manifests for t in man.task_ids})
    manifest = Manifest(first.kind, first.points, task_ids, first.params, first.config, first.base_overrides,
                        None, [str(d) for d in dirs], list(first.seeds))
    return manifest, merged


def write_merged_experiment(manifest: Any, merged: dict[str, Merged], out: Path) -> dict[str, Path]:
    from solve.experiments.tables import write_tables

    taken = [str(out / name) for name in merged if (out / name / "results.jsonl").exists()]
    if taken:  # check every point first: a refused merge writes nothing
        raise MergeError(f"already holding results.jsonl: {', '.join(taken)}; merge into a new directory")
    for name, m in merged.items():
        write_merged(m, out / name, f"arc-ttt merged point: {name}")
    manifest.write(out)
    return write_tables(out, manifest)
