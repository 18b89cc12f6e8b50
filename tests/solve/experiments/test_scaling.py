"""Experiments that scale: adapters reused across inference-only points, and points run at several seeds.

Two module-scoped experiments on the tiny random model:
- a sweep over solve.programs_per_view (inference only) x train.lr (training) on one task, with 8
  training steps so training dominates the ttt stage: every (lr, task) trains once, the second
  programs_per_view value loads the adapter;
- an ablation over two augmentation sets at seeds 0 and 1 on two tasks.
Each test checks one property against the run directories' records, recomputed here independently
of solve.experiments.tables.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from solve.cli.experiments import ablate, merge, sweep
from solve.experiments.plan import ADAPTERS, grid_points, parse_seeds, plan_runs, point_configs

DATASET = "arc-agi-1/evaluation"
TINY = [
    "model.source=random:tiny", "train.steps=1", "augment.n_samples=4", "solve.program_views=1",
    "solve.programs_per_view=1", "solve.program_max_new_tokens=16", "solve.grid_views=1", "solve.score_views=1",
    "sandbox.workers=1",
]
STEPS = 8  # the cache sweep trains this many steps: training then dominates the ttt stage's time
PPV = "solve.programs_per_view"


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    for fn in (ablate, sweep, merge):
        app.command()(fn)
    return app


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(_app(), [str(a) for a in args])
    assert result.exit_code == code, result.output + (repr(result.exception) if result.exception else "")
    return " ".join(result.output.split())


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


@pytest.fixture(scope="module")
def task_ids() -> list[str]:
    from augment.tasks import load_dataset, small_tasks

    return [t.id for t in small_tasks(load_dataset(DATASET).tasks, 2)]


# --- adapter cache ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_sweep(tmp_path_factory, task_ids) -> Path:
    out = tmp_path_factory.mktemp("cache_sweep")
    base = [o for o in TINY if not o.startswith(("train.steps", PPV))] + [f"train.steps={STEPS}"]
    invoke("sweep", "--dataset", DATASET, "--task-ids", task_ids[0], "--param", f"{PPV}=1,2",
           "--param", "train.lr=1e-3,2e-3", "--out", out, "--no-progress", *_sets(base))
    return out


def ttt_record(out: Path, point: str) -> dict:
    (rec,) = read_jsonl(out / point / "results.jsonl")
    return rec["stages"]["ttt"]


@pytest.mark.slow  # minutes-long subprocess or many tiny runs: CI runs it, the inner loop does not
def test_inference_only_points_train_once_per_task(cache_sweep):
    trained = {lr: ttt_record(cache_sweep, f"{PPV}=1,train.lr={lr}") for lr in ("1e-3", "2e-3")}
    loaded = {lr: ttt_record(cache_sweep, f"{PPV}=2,train.lr={lr}") for lr in ("1e-3", "2e-3")}
    for lr in trained:
        t, c = trained[lr], loaded[lr]
        assert t["cached"] is False and t["cache_saved"] is True and t["steps"] == STEPS
        assert c["cached"] is True and c["cache_key"] == t["cache_key"]
        # the record keeps the training's fields; the NLL passes ran again on the same weights
        for k in ("steps", "losses", "loss_first", "loss_last", "stopped_by", "train_seconds"):
            assert c[k] == t[k], k
        assert c["nll_before"] == t["nll_before"] and c["nll_after"] == t["nll_after"]
        assert c["seconds"] < 0.5 * t["seconds"], (c["seconds"], t["seconds"])
    # a training key (train.lr) is a different adapter: trained, not loaded
    assert trained["1e-3"]["cache_key"] != trained["2e-3"]["cache_key"]
    assert trained["1e-3"]["losses"] != trained["2e-3"]["losses"]
    files = sorted(p.relative_to(cache_sweep / ADAPTERS) for p in (cache_sweep / ADAPTERS).rglob("*.safetensors"))
    assert [f.parent.name for f in files] == sorted(t["cache_key"] for t in trained.values())
    # every point's config names the experiment's cache
    for p in (f"{PPV}=1,train.lr=1e-3", f"{PPV}=2,train.lr=2e-3"):
        cfg = yaml.safe_load((cache_sweep / p / "config.yaml").read_text())["config"]
        assert cfg["run"]["adapter_cache"] == str((cache_sweep / ADAPTERS).resolve())


def test_seconds_in_tables_charge_cached_tasks_their_training(cache_sweep):
    rows = {r["point"]: r for r in read_csv(cache_sweep / "sweep.csv")}
    for point in rows:
        (rec,) = read_jsonl(cache_sweep / point / "results.jsonl")
        ttt = rec["stages"]["ttt"]
        extra = ttt["train_seconds"] if ttt["cached"] else 0.0
        assert num(rows[point]["sec_mean"]) == pytest.approx(rec["seconds"] + extra, abs=1e-5)
        assert num(rows[point]["ttt_mean_s"]) == pytest.approx(ttt["seconds"] + extra, abs=1e-5)
        assert int(rows[point]["cached_tasks"]) == int(ttt["cached"])
    assert "loaded their adapter from DIR/adapters" in (cache_sweep / "sweep.md").read_text()


def _engine_and_cfg(run_dir: Path, cache: str | None):
    from solve.pipeline.runconfig import config_from_dict
    from solve.pipeline.rundir import saved_config

    data = saved_config(run_dir)
    data["run"]["adapter_cache"] = cache
    return config_from_dict(data)


def _adapter(engine) -> dict:
    from solve.pipeline.stages import adapter_state

    return {n: p.detach().clone() for n, p in adapter_state(engine.model).items()}


def _train_only(task, cfg, engine) -> dict:
    from solve.pipeline.stages import solve_task, stage_augment, stage_ttt

    rec = solve_task(task, cfg, engine, None, stages=(("augment", stage_augment), ("ttt", stage_ttt)))
    assert rec["status"] == "ok", rec["error"]
    return rec["stages"]["ttt"]


def test_cached_adapter_is_bit_identical_to_fresh_training(cache_sweep, task_ids):
    import torch
    from safetensors.torch import load_file

    from augment.tasks import load_dataset, select
    from solve.pipeline.stages import Engine

    task = select(load_dataset(DATASET).tasks, [task_ids[0]])[0]
    point = cache_sweep / f"{PPV}=2,train.lr=1e-3"
    used = ttt_record(cache_sweep, point.name)
    fresh_cfg = _engine_and_cfg(point, None)
    engine = Engine.load(fresh_cfg)
    fresh = _train_only(task, fresh_cfg, engine)  # no cache: trains
    assert "cached" not in fresh and fresh["losses"] == used["losses"]
    trained = _adapter(engine)
    saved = load_file(str(cache_sweep / ADAPTERS / used["cache_key"] / f"{task.id}.safetensors"))
    assert set(saved) == set(trained)
    assert all(torch.equal(saved[n], trained[n]) for n in trained)

    # loading through the stage puts exactly those weights in the adapter, and scores the same
    cached_cfg = _engine_and_cfg(point, str(cache_sweep / ADAPTERS))
    loaded = _train_only(task, cached_cfg, engine)
    assert loaded["cached"] is True and loaded["cache_key"] == used["cache_key"]
    assert all(torch.equal(p, trained[n]) for n, p in _adapter(engine).items())
    assert loaded["nll_after"] == fresh["nll_after"] == used["nll_after"]
    assert loaded["nll_before"] == fresh["nll_before"] == used["nll_before"]


def test_unreadable_cache_entry_is_trained_again_and_replaced(tmp_path, task_ids):
    from augment.tasks import load_dataset, select
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine

    task = select(load_dataset(DATASET).tasks, [task_ids[0]])[0]
    cfg = load_config(None, [*TINY, f"run.adapter_cache={tmp_path}"])
    engine = Engine.load(cfg)
    first = _train_only(task, cfg, engine)
    weights = tmp_path / first["cache_key"] / f"{task.id}.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"not safetensors")
    again = _train_only(task, cfg, engine)
    assert again["cached"] is False and again["cache_saved"] is True and "cache_error" in again
    assert weights.read_bytes() == good  # retrained to the same weights, written back whole
    assert _train_only(task, cfg, engine)["cached"] is True
    # a different task seed is another adapter
    other = load_config(None, [*TINY, f"run.adapter_cache={tmp_path}", "train.seed=1"])
    assert _train_only(task, other, engine)["cache_key"] != first["cache_key"]


def test_runner_sets_the_cache_unless_the_user_did(tmp_path):
    points = grid_points([(PPV, ["1", "2"])])
    for p, r in zip(points, plan_runs(points, point_configs(None, TINY, points), tmp_path)):
        assert r.path == tmp_path / p.name and r.cfg.run.adapter_cache == str((tmp_path / ADAPTERS).resolve())
    for value, want in (("null", None), ("/elsewhere", "/elsewhere")):
        cfgs = point_configs(None, [*TINY, f"run.adapter_cache={value}"], points)
        assert {r.cfg.run.adapter_cache for r in plan_runs(points, cfgs, tmp_path)} == {want}


# --- seeds -----------------------------------------------------------------------------------------


def test_seeds_set_run_and_train_seed_and_nest_directories(tmp_path):
    points = grid_points([(PPV, ["1", "2"])])
    runs = plan_runs(points, point_configs(None, TINY, points), tmp_path, [3, 4])
    assert [(r.point.name, r.seed) for r in runs] == [(p.name, s) for p in points for s in (3, 4)]
    for r in runs:
        assert r.path == tmp_path / r.point.name / f"seed={r.seed}"
        assert r.cfg.run.seed == r.seed and r.cfg.train.seed == r.seed
    fixed = plan_runs(points, point_configs(None, [*TINY, "train.seed=7"], points), tmp_path, [3, 4])
    assert {r.cfg.train.seed for r in fixed} == {7} and {r.cfg.run.seed for r in fixed} == {3, 4}
    one = plan_runs(points, point_configs(None, TINY, points), tmp_path, [5])  # one seed: the usual layout
    assert [r.path for r in one] == [tmp_path / p.name for p in points] and {r.cfg.run.seed for r in one} == {5}
    assert parse_seeds("0, 1,2") == [0, 1, 2] and parse_seeds(None) == []
    for bad in ("0,x", "1,1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory, task_ids) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    invoke("ablate", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--sets", "none,geometric",
           "--seeds", "0,1", "--out", out, "--no-progress", *_sets(TINY + ["train.steps=2"]))
    return out


def seed_records(out: Path) -> dict[tuple[str, int], list[dict]]:
    return {(p, s): read_jsonl(out / p / f"seed={s}" / "results.jsonl") for p in ("none", "geometric") for s in (0, 1)}


@pytest.mark.slow  # minutes-long subprocess or many tiny runs: CI runs it, the inner loop does not
def test_every_point_runs_at_every_seed(seeds_dir, task_ids):
    assert json.loads((seeds_dir / "experiment.json").read_text())["seeds"] == [0, 1]
    for (point, seed), records in seed_records(seeds_dir).items():
        cfg = yaml.safe_load((seeds_dir / point / f"seed={seed}" / "config.yaml").read_text())["config"]
        assert (cfg["run"]["seed"], cfg["train"]["seed"], cfg["augment"]["set"]) == (seed, seed, point)
        assert [r["task_id"] for r in records] == task_ids
    # seeds really differ: the adapter starts elsewhere, so the loss after the first update differs (the
    # first loss is the base model's: a fresh adapter adds nothing, whatever its seed)
    recs = seed_records(seeds_dir)
    assert recs[("geometric", 0)][0]["stages"]["ttt"]["losses"][-1] != recs[("geometric", 1)][0]["stages"]["ttt"]["losses"][-1]


def _check_spread(row: dict, col: str, per_seed: list[float]) -> None:
    assert num(row[col]) == pytest.approx(np.mean(per_seed), abs=1e-5)
    assert num(row[f"{col}_std"]) == pytest.approx(statistics.stdev(per_seed), abs=1e-5)
    assert num(row[f"{col}_min"]) == pytest.approx(min(per_seed), abs=1e-5)
    assert num(row[f"{col}_max"]) == pytest.approx(max(per_seed), abs=1e-5)


def _nll(r: dict) -> float:
    return r["stages"]["ttt"]["nll_after"]


def test_seed_tables_report_mean_spread_and_paired_differences(seeds_dir):
    recs = seed_records(seeds_dir)
    rows = read_csv(seeds_dir / "ablation.csv")
    assert [(r["row"], r["point"]) for r in rows] == [("point", "none"), ("point", "geometric"), ("diff", "geometric")]
    for row in rows[:2]:
        p = row["point"]
        assert int(row["seeds"]) == 2 and int(row["tasks"]) == 2 and int(row["cached_tasks"]) == 0
        _check_spread(row, "pass2", [np.mean([r["score"] for r in recs[(p, s)]]) for s in (0, 1)])
        _check_spread(row, "nll_after", [np.mean([_nll(r) for r in recs[(p, s)]]) for s in (0, 1)])
        _check_spread(row, "sec_mean", [np.mean([r["seconds"] for r in recs[(p, s)]]) for s in (0, 1)])
    diff = rows[2]
    assert diff["baseline"] == "none" and int(diff["tasks"]) == 2
    per_seed = {}
    for col, value in (("pass2", lambda r: r["score"]), ("nll_after", _nll), ("sec_mean", lambda r: r["seconds"])):
        per_seed[col] = []
        for s in (0, 1):
            base = {r["task_id"]: value(r) for r in recs[("none", s)]}
            per_seed[col].append(np.mean([value(r) - base[r["task_id"]] for r in recs[("geometric", s)]]))
        _check_spread(diff, col, per_seed[col])
        same = all(d > 0 for d in per_seed[col]) or all(d < 0 for d in per_seed[col])
        assert diff[f"{col}_same_sign"] == str(same)
    assert per_seed["nll_after"][0] != 0.0  # the sets train differently: a real difference was checked

    seeds = read_csv(seeds_dir / "ablation_seeds.csv")
    runs = [r for r in seeds if r["row"] == "run"]
    assert [(r["point"], r["seed"]) for r in runs] == [("none", "0"), ("none", "1"), ("geometric", "0"), ("geometric", "1")]
    for r in runs:
        assert num(r["nll_after"]) == pytest.approx(np.mean([_nll(x) for x in recs[(r["point"], int(r["seed"]))]]), abs=1e-5)
    diffs = [r for r in seeds if r["row"] == "diff"]
    assert [num(d["nll_after"]) for d in diffs] == pytest.approx(per_seed["nll_after"], abs=1e-5)

    md = (seeds_dir / "ablation.md").read_text()
    assert "Seeds 0, 1" in md and "Paired differences against `none`" in md
    paired = md[md.index("Paired differences"):].splitlines()
    line = next(x for x in paired if x.startswith("| geometric | 2 | "))
    cell = line.split("|")[4]  # Δ NLL after: 'mean ± std [min, max]'
    shown = [float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", cell)]
    want = [num(rows[2][f"nll_after{k}"]) for k in ("", "_std", "_min", "_max")]
    assert shown == pytest.approx(want, rel=0.01, abs=1e-3)
    import matplotlib.image

    img = matplotlib.image.imread(seeds_dir / "ablation.png")
    assert img.shape[0] > 600 and img[..., :3].std() > 0.05


def test_seed_layout_and_seed_keys_are_checked(seeds_dir, task_ids):
    before = (seeds_dir / "experiment.json").read_text()
    out = invoke("ablate", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--sets", "none,geometric",
                 "--out", seeds_dir, *_sets(TINY), code=2)
    assert "--seeds 0,1" in out and "same layout" in out
    out = invoke("ablate", "--dataset", DATASET, "--task-ids", task_ids[0], "--sets", "none", "--seeds", "0,1",
                 "--out", seeds_dir / "x", *_sets([*TINY, "run.seed=3"]), code=2)
    assert "drop run.seed" in out
    assert (seeds_dir / "experiment.json").read_text() == before and not (seeds_dir / "x").exists()


def test_merge_keeps_the_seed_layout(seeds_dir, tmp_path):
    invoke("merge", seeds_dir, "--out", tmp_path / "m")
    for p in ("none", "geometric"):
        for s in (0, 1):
            assert (read_jsonl(tmp_path / "m" / p / f"seed={s}" / "results.jsonl")
                    == read_jsonl(seeds_dir / p / f"seed={s}" / "results.jsonl"))
    a, b = read_csv(tmp_path / "m" / "ablation.csv"), read_csv(seeds_dir / "ablation.csv")
    for col in ("row", "point", "pass2", "pass2_std", "nll_after", "nll_after_std", "nll_after_min"):
        assert [r[col] for r in a] == [r[col] for r in b], col
