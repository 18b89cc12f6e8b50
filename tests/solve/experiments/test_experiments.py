"""Ablations, sweeps and merges end to end on the tiny random model and two small real tasks.

The expensive runs (an ablation over two sets, a sweep over two step counts, two shards) happen once
per module; each test then checks one property of what they wrote against the run directories'
results.jsonl, recomputed here independently of solve.pipeline.report.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from solve.cli.experiments import ablate, bench, merge, sweep
from solve.experiments.merge import without_timing
from solve.experiments.plan import key_problem, parse_param, split_values
from solve.experiments.tables import pareto_front

DATASET = "arc-agi-1/evaluation"
TINY = [
    "model.source=random:tiny", "train.steps=1", "augment.n_samples=4", "solve.program_views=1",
    "solve.programs_per_view=1", "solve.program_max_new_tokens=16", "solve.grid_views=1", "solve.score_views=1",
    "sandbox.workers=1",
]


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    for fn in (ablate, sweep, merge, bench):  # the way the lead registers them on the main app
        app.command()(fn)
    return app


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(_app(), [str(a) for a in args])
    assert result.exit_code == code, result.output + (repr(result.exception) if result.exception else "")
    return " ".join(result.output.split())  # rich wraps long lines at the runner's 80 columns


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def task_ids() -> list[str]:
    from augment.tasks import load_dataset, small_tasks

    return [t.id for t in small_tasks(load_dataset(DATASET).tasks, 2)]


@pytest.fixture(scope="module")
def ablation(tmp_path_factory, task_ids) -> Path:
    out = tmp_path_factory.mktemp("ablation")
    invoke("ablate", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--sets", "none,geometric",
           "--out", out, "--no-progress", *_sets(TINY))
    return out


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, task_ids) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    base = [o for o in TINY if not o.startswith("train.steps")]
    # `ttt.steps` is the spelling; the schema's key is train.steps (accepted as an alias).
    invoke("sweep", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--param", "ttt.steps=0,1",
           "--out", out, "--no-progress", *_sets(base))
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def check_row_matches_records(row: dict, records: list[dict]) -> None:
    """The table's numbers recomputed straight from results.jsonl."""
    assert int(row["tasks"]) == len(records)
    assert num(row["pass2"]) == pytest.approx(np.mean([r["score"] for r in records]), abs=1e-6)
    assert int(row["solved"]) == sum(r["score"] == 1.0 for r in records)
    assert num(row["nll_after"]) == pytest.approx(np.mean([r["stages"]["ttt"]["nll_after"] for r in records]), abs=1e-5)
    assert num(row["nll_before"]) == pytest.approx(np.mean([r["stages"]["ttt"]["nll_before"] for r in records]), abs=1e-5)
    verified = [r["stages"]["verify"]["verified"] for r in records]
    assert num(row["verified_per_task"]) == pytest.approx(np.mean(verified))
    assert num(row["frac_tasks_verified"]) == pytest.approx(np.mean([v > 0 for v in verified]))
    assert num(row["sec_mean"]) == pytest.approx(np.mean([r["seconds"] for r in records]), abs=1e-5)
    assert num(row["sec_p90"]) == pytest.approx(np.percentile([r["seconds"] for r in records], 90), abs=1e-5)
    for stage in ("ttt", "induction", "transduction"):
        secs = [r["stages"][stage]["seconds"] for r in records]
        assert num(row[f"{stage}_mean_s"]) == pytest.approx(np.mean(secs), abs=1e-5)


def check_png(path: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert img[..., :3].std() > 0.05  # not a blank canvas


# --- ablation --------------------------------------------------------------------------------------


def test_ablation_writes_one_run_dir_per_set_with_same_tasks(ablation, task_ids):
    for s in ("none", "geometric"):
        cfg = yaml.safe_load((ablation / s / "config.yaml").read_text())["config"]
        assert cfg["augment"]["set"] == s
        assert cfg["run"]["seed"] == 0 and cfg["model"]["source"] == "random:tiny"
        assert [r["task_id"] for r in read_jsonl(ablation / s / "results.jsonl")] == task_ids
        assert set(json.loads((ablation / s / "submission.json").read_text())) == set(task_ids)
    # the sets really differ: 'none' has one leave-one-out sample per train pair, geometric reaches n_samples
    kept = {s: [r["stages"]["augment"]["kept"] for r in read_jsonl(ablation / s / "results.jsonl")] for s in ("none", "geometric")}
    assert kept["geometric"] == [4, 4] and kept["none"] != kept["geometric"]


def test_ablation_tables_match_results(ablation):
    rows = read_csv(ablation / "ablation.csv")
    assert [r["point"] for r in rows] == ["none", "geometric"]
    for col in ("augment.set", "pass2", "solved", "nll_before", "nll_after", "verified_per_task",
                "frac_tasks_verified", "sec_mean", "sec_p90", "ttt_mean_s", "ttt_p90_s", "vote_mean_s"):
        assert col in rows[0], col
    for row in rows:
        check_row_matches_records(row, read_jsonl(ablation / row["point"] / "results.jsonl"))
    md = (ablation / "ablation.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| none |") or line.startswith("| geometric |")]
    assert len(table) == 4  # the metrics table and the per-stage table
    for row in rows:
        line = next(x for x in table if x.startswith(f"| {row['point']} |") and "/" in x.split("|")[4])
        assert f"{num(row['nll_after']):.3f}" in line and f"{num(row['sec_mean']):.1f}" in line
    assert "LOO NLL" in md and "run.eval_loo_nll=true" in md
    check_png(ablation / "ablation.png")


def test_ablation_refuses_a_dir_holding_another_config(ablation, task_ids):
    before = (ablation / "experiment.json").read_text()
    out = invoke("ablate", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--sets", "none", "--out", ablation,
                 *_sets([o for o in TINY if o != "train.steps=1"] + ["train.steps=2"]), code=2)
    assert "different config" in out and "train.steps" in out
    assert (ablation / "experiment.json").read_text() == before


# --- sweep -----------------------------------------------------------------------------------------


def test_sweep_tables_match_results_and_mark_the_pareto_front(sweep_dir):
    rows = read_csv(sweep_dir / "sweep.csv")
    assert [r["train.steps"] for r in rows] == ["0", "1"]
    for row in rows:
        records = read_jsonl(sweep_dir / row["point"] / "results.jsonl")
        cfg = yaml.safe_load((sweep_dir / row["point"] / "config.yaml").read_text())["config"]
        assert cfg["train"]["steps"] == int(row["train.steps"])
        assert [r["stages"]["ttt"]["steps"] for r in records] == [int(row["train.steps"])] * 2
        check_row_matches_records(row, records)
    for metric, better in (("pass2", max), ("nll_after", min)):
        xs, ys = [num(r["sec_mean"]) for r in rows], [num(r[metric]) for r in rows]
        dominated = [any(xs[j] <= xs[i] and better(ys[j], ys[i]) == ys[j] and (xs[j], ys[j]) != (xs[i], ys[i])
                         for j in range(len(rows))) for i in range(len(rows))]
        assert [r[f"pareto_{metric}"] == "True" for r in rows] == [not d for d in dominated]
    assert "| train.steps=0 | 0 |" in (sweep_dir / "sweep.md").read_text()
    check_png(sweep_dir / "sweep.png")


def test_sweep_validation_lists_every_problem_and_runs_nothing(tmp_path, task_ids):
    out = invoke("sweep", "--dataset", DATASET, "--task-ids", task_ids[0], "--out", tmp_path / "x",
                 "--param", "train.steps=0,-1,x", "--param", "lora.rr=1,2", "--param", "train.lr=0,1e-3",
                 "--param", "solve", "--set", "train.stepz=3", code=2)
    for problem in ("train.steps=-1", "train.steps=x", "lora.rr: unknown key 'rr' in lora; did you mean lora.r?",
                    "train.lr=0", "--param 'solve' is not of the form", "train.stepz"):
        assert problem in out, problem
    assert "7 problem(s)" not in out and "6 problem(s)" in out
    assert not (tmp_path / "x").exists()


def test_param_parsing_and_key_checks():
    assert split_values("0,8,[q_proj, v_proj],'a,b'") == ["0", "8", "[q_proj, v_proj]", "'a,b'"]
    assert parse_param("ttt.steps=0,8") == ("train.steps", ["0", "8"])
    assert key_problem("train.steps") is None and key_problem("solve.temperature") is None
    assert "is a value" in key_problem("train.steps.x")
    assert "unknown key 'nope'" in key_problem("nope.x")
    with pytest.raises(ValueError):
        parse_param("train.steps=0,,8")


def test_pareto_front():
    xs, ys = [1.0, 2.0, 3.0, 4.0, 2.0], [0.1, 0.3, 0.2, 0.5, 0.3]
    assert pareto_front(xs, ys, maximize=True) == [0, 1, 3]  # 2 is dominated by 1; 4 ties with 1 (first kept)
    assert pareto_front(xs, [None, 5.0, 4.0, 4.0, 6.0], maximize=False) == [1, 2]


# --- shards and merge ------------------------------------------------------------------------------


@pytest.mark.slow  # minutes-long subprocess or many tiny runs: CI runs it, the inner loop does not
def test_shards_merged_equal_the_unsharded_run(ablation, task_ids, tmp_path):
    for i in (0, 1):
        invoke("ablate", "--dataset", DATASET, "--task-ids", ",".join(task_ids), "--sets", "none", "--shard", f"{i}/2",
               "--out", tmp_path / f"s{i}", "--no-progress", *_sets(TINY))
        assert [r["task_id"] for r in read_jsonl(tmp_path / f"s{i}" / "none" / "results.jsonl")] == [task_ids[i]]
    invoke("merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "m")
    merged = {r["task_id"]: r for r in read_jsonl(tmp_path / "m" / "none" / "results.jsonl")}
    whole = {r["task_id"]: r for r in read_jsonl(ablation / "none" / "results.jsonl")}
    assert set(merged) == set(whole) == set(task_ids)
    for tid in task_ids:
        assert merged[tid]["attempts"] == whole[tid]["attempts"] and merged[tid]["score"] == whole[tid]["score"]
        assert without_timing(merged[tid]) == without_timing(whole[tid])
    assert json.loads((tmp_path / "m" / "none" / "submission.json").read_text()) == json.loads(
        (ablation / "none" / "submission.json").read_text())
    a, b = read_csv(tmp_path / "m" / "ablation.csv")[0], read_csv(ablation / "ablation.csv")[0]
    for col in ("tasks", "pass2", "solved", "nll_before", "nll_after", "verified_per_task"):
        assert a[col] == b[col], col
    assert (tmp_path / "m" / "ablation.png").is_file() and (tmp_path / "m" / "none" / "report.md").is_file()

    # plain run dirs with a task source: a task that no shard finished gets placeholders
    third = "0692e18c"
    invoke("merge", tmp_path / "s0" / "none", tmp_path / "s1" / "none", "--out", tmp_path / "r",
           "--dataset", DATASET, "--task-ids", ",".join([*task_ids, third]))
    sub = json.loads((tmp_path / "r" / "submission.json").read_text())
    assert set(sub) == {*task_ids, third}
    assert [r["task_id"] for r in read_jsonl(tmp_path / "r" / "results.jsonl")] == task_ids
    assert json.loads((tmp_path / "r" / "merge.json").read_text())["missing"] == [third]


def test_merge_reports_conflicting_duplicates(ablation, tmp_path):
    out = invoke("merge", ablation / "none", ablation / "geometric", "--out", tmp_path / "c", code=2)
    assert "different configs (augment.set)" in out and not (tmp_path / "c").exists()
    invoke("merge", ablation / "none", ablation / "geometric", "--out", tmp_path / "k", "--keep-first")
    assert read_jsonl(tmp_path / "k" / "results.jsonl") == read_jsonl(ablation / "none" / "results.jsonl")

    # same config, identical results: a harmless duplicate; same config, different results: a conflict
    shutil.copytree(ablation / "none", tmp_path / "copy")
    out = invoke("merge", ablation / "none", tmp_path / "copy", "--out", tmp_path / "d")
    assert "2 identical duplicate(s)" in out
    recs = read_jsonl(tmp_path / "copy" / "results.jsonl")
    recs[0]["attempts"][0]["attempt_1"] = [[9]]
    (tmp_path / "copy" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = invoke("merge", ablation / "none", tmp_path / "copy", "--out", tmp_path / "e", code=2)
    assert "same config but different results" in out


def test_bench_sampling_runs_every_path_on_the_same_prompts(task_ids):
    from augment.tasks import load_dataset, select
    from solve.experiments.bench import bench_grid_search, bench_sampling
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine

    cfg = load_config(None, ["model.source=random:tiny", "solve.programs_per_view=3", "solve.program_max_new_tokens=16",
                             "solve.program_views=1"])
    engine = Engine.load(cfg)
    tasks = select(load_dataset(DATASET).tasks, task_ids)
    g = bench_sampling(engine, cfg, tasks, n_tasks=2, repeats=1)
    assert (g["prompts"], g["per_prompt"]) == (2, 3)
    for way in ("generate_unmerged", "batched_merged_no_draft", "batched_unmerged", "batched_merged"):
        # <= 16 new tokens for each of 6 sequences; re-encoding the decoded text may merge or split a few
        assert 0 < g[way]["tokens"] <= 3 * 96 and g[way]["tokens_per_s"] > 0
    assert g["speedup"] == pytest.approx(g["batched_merged"]["tokens_per_s"] / g["generate_unmerged"]["tokens_per_s"])
    d = bench_grid_search(engine, cfg, tasks[0], min_prob=0.5)
    assert d["candidates"] >= 0 and d["forwards"] >= 1 and d["dfs_s"] > 0  # a random model may write no grid that fits


def test_bench_demo_settings_are_the_demo_configs():
    """`arc-ttt bench` runs the demo without configs/ on disk: its copy of the settings must not drift."""
    from solve.experiments.bench import DEMO_OVERRIDES
    from solve.pipeline.runconfig import load_config

    root = Path(__file__).resolve().parents[3]
    assert load_config(None, DEMO_OVERRIDES) == load_config(root / "configs" / "cpu-demo.yaml")


def test_bench_scoring_both_ways_agree(task_ids):
    from augment.tasks import load_dataset, select
    from solve.experiments.bench import bench_scoring
    from solve.pipeline.runconfig import load_config
    from solve.pipeline.stages import Engine

    engine = Engine.load(load_config(None, ["model.source=random:tiny"]))
    task = select(load_dataset(DATASET).tasks, task_ids)[0]
    sc = bench_scoring(engine, task, n_candidates=3, n_views=2)
    assert (sc["candidates"], sc["views"], sc["items"]) == (3, 2, 6)
    assert sc["max_abs_diff"] < 1e-2 and sc["whole_rows_s"] > 0 and sc["shared_prompt_s"] > 0
