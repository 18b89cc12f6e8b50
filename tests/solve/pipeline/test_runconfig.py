"""The run config: every shipped YAML validates, overrides work, and every problem is reported at once."""

from pathlib import Path

import pytest

from solve.pipeline.runconfig import ConfigError, apply_overrides, dump_config, load_config

CONFIGS = sorted(Path("configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.stem for p in CONFIGS} >= {"cpu-demo", "smoke", "kaggle-l4x4"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_validates_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(again) == cfg


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("train.steps=16", ("train", "steps"), 16),
        ("train.lr=1e-4", ("train", "lr"), 1e-4),
        ("augment.permute_background=true", ("augment", "permute_background"), True),
        ("lora.target_modules=[q_proj, v_proj]", ("lora", "target_modules"), ["q_proj", "v_proj"]),
        ("run.task_timeout_s=null", ("run", "task_timeout_s"), None),
    ],
    ids=["int", "float in e-notation", "bool", "list", "null"],
)
def test_dotted_overrides(override, key, value):
    cfg = load_config("configs/smoke.yaml", [override])
    assert getattr(getattr(cfg, key[0]), key[1]) == value


def test_every_problem_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: many\n  bogus: 1\nsolve:\n  mode: telepathy\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad, ["lora.r=0", "nokey", "augment.set=rotations"])
    problems = "\n".join(e.value.problems)
    for expected in ("train.steps", "train.bogus", "solve.mode", "lora.r", "'nokey'", "augment.set"):
        assert expected in problems, expected
    assert len(e.value.problems) == 6
    assert str(bad) in str(e.value)


@pytest.mark.parametrize(
    "text, problem",
    [("[1, 2]", "top level must be a mapping"), ("train: [", "invalid YAML")],
    ids=["not a mapping", "broken yaml"],
)
def test_bad_files(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load_config("configs/nope.yaml")


def test_override_through_a_value_is_an_error():
    data = {"train": {"steps": 3}}
    assert apply_overrides(data, ["train.steps.x=1"]) == ["train.steps: is a value, cannot set train.steps.x"]


def test_search_settings_default_to_one_pass_and_sweep():
    """solve.rounds: 0 (no search) unless asked; every search key is sweepable and checked."""
    from solve.experiments.plan import sweep_plan

    c = load_config(None).solve
    assert (c.rounds, c.refine_top_k) == (0, 0) and c.round_steps >= 0 and c.hindsight_cap >= 0 and 0 < c.search_fraction <= 1
    points, cfgs = sweep_plan("configs/smoke.yaml", [], ["solve.rounds=0,1,2", "solve.refine_top_k=0,4"])
    assert [(x.solve.rounds, x.solve.refine_top_k) for x in cfgs] == [(r, k) for r in (0, 1, 2) for k in (0, 4)]
    assert points[-1].name == "solve.rounds=2,solve.refine_top_k=4"
    with pytest.raises(ConfigError) as e:
        sweep_plan("configs/smoke.yaml", [], ["solve.rounds=-1,1", "solve.search_fraction=0,0.5"])
    assert "solve.rounds=-1" in str(e.value) and "solve.search_fraction=0" in str(e.value)
