"""Ablations and sweeps: a grid of config points, each run as a normal, resumable run directory.

    DIR/experiment.json   what was asked: kind, points (name, overrides, values), task ids, seeds, shard
    DIR/<point>/          one run directory per point (solve/pipeline/rundir.py), same tasks and seeds for all;
                          with several seeds (`--seeds 0,1,2`) one per point and seed: DIR/<point>/seed=<s>/
    DIR/adapters/         trained adapters shared by the runs (`run.adapter_cache`): a point that changes
                          only inference keys (solve.*, sandbox.*) loads each task's adapter instead of training
    DIR/ablation.* or DIR/sweep.*   tables and plots over the points (solve/experiments/tables.py)

Every point's config is validated before anything runs, and all problems are reported at once.
Points run one after another in this process with the configured placement; one engine (model +
LoRA wrapper) is shared by consecutive points whose model and lora sections agree, since loading it
is the only per-point cost that does not depend on the tasks. With `--executor ray` every (point, task)
unit is spread over Ray actors at once instead (solve/placement/ray_actors.py; docs/cluster.md).
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from pydantic import BaseModel

from solve.pipeline.runconfig import ConfigError, RunConfig, load_config
from solve.pipeline.rundir import RESUME_SAFE_KEYS, config_diff, saved_config

ABLATION_SETS = ("none", "geometric", "color", "geometric+color", "all")
MANIFEST = "experiment.json"
ADAPTERS = "adapters"  # DIR/adapters: the experiment's adapter cache (run.adapter_cache)
# The issue that asked for sweeps wrote `ttt.steps`; the schema's section is `train`. Accepting the
# section alias avoids a confusing failure, and points are always named by the canonical key.
SECTION_ALIASES = {"ttt": "train"}


class ExperimentError(ValueError):
    """A problem that stops an experiment before or between points (not a task failure)."""


@dataclass
class Point:
    name: str  # also the point's directory name under DIR
    overrides: list[str]  # dotted overrides applied after the base config and the user's --set
    values: dict[str, Any] = field(default_factory=dict)  # the swept keys and their values, for tables


# --- building points --------------------------------------------------------------------------------


def canonical_key(key: str) -> str:
    head, dot, rest = key.strip().partition(".")
    return SECTION_ALIASES.get(head, head) + dot + rest


def key_problem(key: str) -> str | None:
    """Why `key` is not a settable dotted key of RunConfig (None when it is)."""
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        here = ".".join(parts[:i]) or "the config"
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f"did you mean {'.'.join(parts[:i] + close)}?" if close else f"{here} has: {', '.join(fields)}"
            return f"{key}: unknown key {part!r} in {here}; {hint}"
        ann = fields[part].annotation
        is_section = isinstance(ann, type) and issubclass(ann, BaseModel)
        if i < len(parts) - 1 and not is_section:
            return f"{key}: {'.'.join(parts[: i + 1])} is a value, not a section"
        if i == len(parts) - 1 and is_section:
            return f"{key}: is a section; name one of its keys ({', '.join(ann.model_fields)})"
        if is_section:
            model = ann
    return None


def split_values(text: str) -> list[str]:
    """'0,8,16' -> ['0', '8', '16']; commas inside [...] or {...} or quotes stay (YAML lists as values)."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_param(text: str) -> tuple[str, list[str]]:
    """'train.steps=0,8,16' -> ('train.steps', ['0', '8', '16']); raises ValueError with the reason."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param {text!r} is not of the form section.key=v1,v2,...")
    values = split_values(raw)
    if any(v == "" for v in values):
        raise ValueError(f"--param {text!r}: empty value in the list")
    return canonical_key(key), values


def dir_name(text: str) -> str:
    """A point name usable as one directory name (no separators, no spaces)."""
    return re.sub(r"[^A-Za-z0-9._=+,-]+", "_", text).strip("_") or "point"


def _unique(points: list[Point]) -> list[Point]:
    seen: dict[str, int] = {}
    for p in points:
        n = seen.get(p.name, 0)
        seen[p.name] = n + 1
        if n:
            p.name = f"{p.name}_{n}"
    return points


def ablation_points(sets: Sequence[str]) -> list[Point]:
    """One point per augmentation set, in the order given."""
    return _unique([Point(dir_name(s), [f"augment.set={s}"], {"augment.set": s}) for s in sets])


def grid_points(params: Sequence[tuple[str, list[str]]]) -> list[Point]:
    """The cartesian product of every param's values (first param varies slowest)."""
    keys = [k for k, _ in params]
    points = []
    for combo in itertools.product(*[vals for _, vals in params]):
        values = {k: _yaml_value(v) for k, v in zip(keys, combo)}
        name = ",".join(f"{k}={v}" for k, v in zip(keys, combo))
        points.append(Point(dir_name(name), [f"{k}={v}" for k, v in zip(keys, combo)], values))
    return _unique(points)


def _yaml_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # load_config reports the bad value with its key; the table just shows the text


def _parse_params(param_texts: Sequence[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The well-formed params with known keys, and a problem line for each of the others."""
    problems, params = [], []
    for text in param_texts:
        try:
            key, values = parse_param(text)
        except ValueError as e:
            problems.append(str(e))
            continue
        problem = key_problem(key)
        if problem:
            problems.append(problem)
        elif key in dict(params):
            problems.append(f"{key}: given in two --param options; list all its values in one")
        else:
            params.append((key, values))
    if not param_texts:
        problems.append("give at least one --param section.key=v1,v2,...")
    return params, problems


def sweep_plan(
    config: str | Path | None, base_overrides: Sequence[str], param_texts: Sequence[str]
) -> tuple[list[Point], list[RunConfig]]:
    """Points of `--param` texts and their configs; one ConfigError lists every problem.

    Each bad value is reported once ('train.steps=-1: ...'), not once per grid point containing it;
    a point is named only for problems that no single value explains.
    """
    params, problems = _parse_params(param_texts)
    base = _problems(config, base_overrides)
    problems += base
    known = set(base)
    for key, values in params:
        for v in values:
            for q in _problems(config, [*base_overrides, f"{key}={v}"]):
                if q not in known:
                    known.add(q)
                    problems.append(f"{key}={v}: {q}")
    points = grid_points(params) if params else []
    cfgs, point_problems = _point_configs(config, base_overrides, points, known)
    problems += point_problems
    if problems:
        raise ConfigError("sweep", problems)
    return points, cfgs


def _problems(config: str | Path | None, overrides: Sequence[str]) -> list[str]:
    try:
        load_config(config, list(overrides))
    except ConfigError as e:
        return list(e.problems)
    return []


def _point_configs(
    config: str | Path | None, base_overrides: Sequence[str], points: Sequence[Point], known: set[str]
) -> tuple[list[RunConfig], list[str]]:
    cfgs, problems = [], []
    for p in points:
        try:
            cfgs.append(load_config(config, [*base_overrides, *p.overrides]))
        except ConfigError as e:
            problems += [f"point {p.name}: {q}" for q in e.problems if q not in known]
    return cfgs, problems


def point_configs(config: str | Path | None, base_overrides: Sequence[str], points: Sequence[Point]) -> list[RunConfig]:
    """Every point's resolved config; raises one ConfigError listing the problems of all points
    (problems of the base config, file + --set, listed once rather than once per point)."""
    base = _problems(config, base_overrides)
    cfgs, problems = _point_configs(config, base_overrides, points, set(base))
    if base or problems:
        raise ConfigError(str(config) if config else "config", base + problems)
    return cfgs


# --- the manifest -----------------------------------------------------------------------------------


@dataclass
class Manifest:
    kind: str  # "ablation" | "sweep"
    points: list[Point]
    task_ids: list[str]
    params: list[str] = field(default_factory=list)  # swept keys (the table's leading columns)
    config: str | None = None
    base_overrides: list[str] = field(default_factory=list)
    shard: str | None = None
    merged_from: list[str] = field(default_factory=list)
    # --seeds: every point runs once per seed. [] = once at the config's run.seed (as before seeds existed).
    seeds: list[int] = field(default_factory=list)

    @property
    def multi_seed(self) -> bool:
        return is_multi_seed(self.seeds)

    def runs(self) -> list[tuple[Point, int | None, str]]:
        """(point, seed or None, directory relative to DIR) of every run, point by point, seeds in order."""
        return expand_runs(self.points, self.seeds)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        (out / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, out: Path) -> Manifest:
        data = json.loads((out / MANIFEST).read_text())
        data["points"] = [Point(**p) for p in data["points"]]
        return cls(**data)


def is_experiment(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def is_multi_seed(seeds: Sequence[int]) -> bool:
    """Several seeds: runs go one level down (DIR/<point>/seed=<s>); one seed keeps DIR/<point>."""
    return len(seeds) > 1


def run_dir_name(point: str, seed: int | None, seeds: Sequence[int]) -> str:
    """The run's directory relative to DIR."""
    return f"{point}/seed={seed}" if is_multi_seed(seeds) else point


def expand_runs(points: Sequence[Point], seeds: Sequence[int]) -> list[tuple[Point, int | None, str]]:
    """(point, seed or None, directory relative to DIR) of every run, point by point, seeds in order."""
    each: list[int | None] = list(seeds) or [None]
    return [(p, s, run_dir_name(p.name, s, seeds)) for p in points for s in each]


def parse_seeds(text: str | None) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; None or '' -> [] (the config's run.seed); raises ValueError with the reason."""
    if not text or not text.strip():
        return []
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: a seed is given twice")
    return seeds


# --- running ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run directory of an experiment: a point at one seed, with its final config."""

    point: Point
    seed: int | None  # None: the config's own run.seed (no --seeds)
    path: Path
    cfg: RunConfig


def seeded_config(cfg: RunConfig, seed: int) -> RunConfig:
    """`cfg` at `seed`: run.seed (augmentation, sampling) and train.seed (adapter init, sample order),
    so the spread over seeds covers all of the run's randomness; a train.seed the config, --set or
    --param gives explicitly stays fixed (the user asked for it)."""
    update: dict[str, Any] = {"run": cfg.run.model_copy(update={"seed": seed})}
    if "seed" not in cfg.train.model_fields_set:
        update["train"] = cfg.train.model_copy(update={"seed": seed})
    return cfg.model_copy(update=update)


def with_adapter_cache(cfg: RunConfig, run_dir: Path, cache: Path) -> RunConfig:
    """`cfg` sharing the experiment's adapter cache, unless the user set run.adapter_cache (even to
    null), or the run directory holds results of a config from before the cache existed (keeping
    that config lets it resume)."""
    if "adapter_cache" in cfg.run.model_fields_set:
        return cfg
    saved = saved_config(run_dir) if _has_results(run_dir) else None
    if saved is not None and "adapter_cache" not in (saved.get("run") or {}):
        return cfg
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"adapter_cache": str(cache.resolve())})})


def plan_runs(points: Sequence[Point], cfgs: Sequence[RunConfig], out: Path, seeds: Sequence[int] = ()) -> list[Run]:
    """Every run of the experiment (point-major, seeds in order) with its directory and final config."""
    by_name = {p.name: cfg for p, cfg in zip(points, cfgs)}
    runs = []
    for p, seed, rel in expand_runs(points, seeds):
        cfg = by_name[p.name] if seed is None else seeded_config(by_name[p.name], seed)
        runs.append(Run(p, seed, out / rel, with_adapter_cache(cfg, out / rel, out / ADAPTERS)))
    return runs


def check_resumable(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse to add results of one config to a directory holding results of another (the keys that
    solve.pipeline.rundir lets differ on resume excepted, so this check and RunDir.open agree)."""
    if not _has_results(run_dir):
        return
    diff = [k for k in config_diff(saved_config(run_dir), cfg.model_dump(mode="json")) if k not in RESUME_SAFE_KEYS]
    if diff:
        raise ExperimentError(f"{run_dir} holds results of a different config (keys: {', '.join(diff)}); use a new --out")


def check_layout(out: Path, seeds: Sequence[int]) -> None:
    """Refuse to switch DIR between one seed (DIR/<point>) and several (DIR/<point>/seed=<s>) once it has
    results: the new runs would nest inside, or sit beside, the old ones and never be tabulated together."""
    if not is_experiment(out):
        return
    old = Manifest.read(out)
    if old.multi_seed != is_multi_seed(seeds) and any(_has_results(out / rel) for _, _, rel in old.runs()):
        was = f"--seeds {','.join(map(str, old.seeds))}" if old.multi_seed else "one seed (DIR/<point>)"
        raise ExperimentError(f"{out} holds runs of {was}; resume it with the same layout, or use a new --out")


def check_points(points: Sequence[Point], cfgs: Sequence[RunConfig], out: Path, seeds: Sequence[int] = ()) -> None:
    """Raise ExperimentError naming every run directory that holds results of another config."""
    check_layout(out, seeds)
    problems = []
    for r in plan_runs(points, cfgs, out, seeds):
        try:
            check_resumable(r.path, r.cfg)
        except ExperimentError as e:
            problems.append(str(e))
    if problems:
        raise ExperimentError("\n".join(problems))


def _has_results(run_dir: Path) -> bool:
    from solve.pipeline.rundir import read_results

    return bool(read_results(run_dir / "results.jsonl"))


def _pending(run_dir: Path, task_ids: Sequence[str]) -> bool:
    from solve.pipeline.rundir import read_results

    done = {r.get("task_id") for r in read_results(run_dir / "results.jsonl")}
    return any(t not in done for t in task_ids)


def run_points(
    points: Sequence[Point],
    cfgs: Sequence[RunConfig],
    tasks: Sequence[Any],
    out: Path,
    console: Any,
    progress: bool = True,
    load_engine: Callable[[RunConfig], Any] | None = None,
    run: Callable[..., Any] | None = None,
    seeds: Sequence[int] = (),
    executor: str = "local",
    ray_address: str | None = None,
) -> None:
    """Run every point (once per seed with `seeds`) into its directory under `out`, one run after
    another (each resumes what is there); every run shares the adapter cache out/adapters.
    `executor="ray"`: every (run, task) unit at once on a Ray cluster (solve.placement.ray_actors)."""
    from solve.pipeline.run import RunOptions
    from solve.placement.dispatch import RAY_LOG, check_ray_config, run_tasks

    run = run or run_tasks
    check_points(points, cfgs, out, seeds)  # all checks first: do not fail at point 4 of 5
    runs = plan_runs(points, cfgs, out, seeds)
    if executor == "ray":
        from solve.placement.ray_actors import RayJob, run_ray

        for r in runs:
            check_ray_config(r.cfg)
        jobs = [RayJob(r.cfg, tasks, RunOptions(out=r.path, progress=False)) for r in runs]
        run_ray(jobs, console, ray_address, progress, out / RAY_LOG)
        return
    engine, engine_key = None, None
    ids = [t.id for t in tasks]
    for i, r in enumerate(runs):
        seed = "" if r.seed is None else f", seed {r.seed}"
        console.rule(f"run {i + 1}/{len(runs)}: {r.point.name}{seed}" if seeds else f"point {i + 1}/{len(runs)}: {r.point.name}")
        use = None
        # Share the engine only for single-process placement with work to do; other placements
        # (per_gpu workers) load their own models, and a finished point must not load anything.
        if r.cfg.placement.mode == "single" and _pending(r.path, ids):
            key = json.dumps(r.cfg.model_dump(mode="json", include={"model", "lora"}), sort_keys=True)
            if key != engine_key:
                engine = None  # drop the previous model before loading the next one
                engine = (load_engine or _load_engine)(r.cfg)
                engine_key = key
            use = engine
        run(r.cfg, tasks, RunOptions(out=r.path, progress=progress), console, engine=use)


def _load_engine(cfg: RunConfig) -> Any:
    from solve.pipeline.stages import Engine

    return Engine.load(cfg)


def point_records(run_dir: Path, task_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The point's finished records for `task_ids`, in that order (a later line for a task wins)."""
    from solve.pipeline.rundir import read_results

    by_id = {r["task_id"]: r for r in read_results(run_dir / "results.jsonl") if "task_id" in r}
    return [by_id[t] for t in task_ids if t in by_id]
