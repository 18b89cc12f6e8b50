"""The kernel entry point in-process (fast): resume, placeholder mode, repair, the watchdog."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from solve.kernel.main import main, repair_submission
from solve.kernel.placeholder import detect_placeholder, file_sha256
from solve.kernel.rehearse import build_fake_kaggle, kernel_argv
from solve.pipeline.rundir import RunDir, read_results
from solve.select.submission import validate_submission


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_resume_after_restart_skips_finished_tasks(tmp_path, small_tasks, config, fast):
    fake = build_fake_kaggle(tmp_path, small_tasks[:2], "random:tiny")
    argv = kernel_argv(fake, config, 600, 0, fast, ["--no-watchdog", "--min-start-s", "5"])
    assert main(argv) == 0
    results = read_results(fake.working / "results.jsonl")
    assert sorted(r["task_id"] for r in results) == sorted(t.id for t in small_tasks[:2])
    first_kernel = json.loads((fake.working / "kernel.json").read_text())
    timeline_before = _lines(fake.working / "timeline.jsonl")
    sub_before = (fake.working / "submission.json").read_text()

    assert main(argv) == 0  # the restart: same working dir
    assert len(read_results(fake.working / "results.jsonl")) == 2  # nothing solved twice
    assert _lines(fake.working / "timeline.jsonl") == timeline_before  # no task started again
    assert (fake.working / "submission.json").read_text() == sub_before
    kernel = json.loads((fake.working / "kernel.json").read_text())
    assert kernel["started_at"] == first_kernel["started_at"]  # the clock is not reset by a restart
    assert len(kernel["runs"]) == 2
    # run_tasks' resolved config survives the kernel's own opens of the run dir
    assert "config" in (fake.working / "config.yaml").read_text()


def test_placeholder_mode_runs_a_subset_and_keeps_the_submission_complete(tmp_path, small_tasks, config, fast):
    fake = build_fake_kaggle(tmp_path, small_tasks, "random:tiny")
    argv = kernel_argv(fake, config, 600, 0, fast,
                       ["--no-watchdog", "--min-start-s", "5", "--placeholder", "yes", "--placeholder-tasks", "1", "--placeholder-deadline-s", "60"])
    assert main(argv) == 0
    kernel = json.loads((fake.working / "kernel.json").read_text())
    assert kernel["placeholder"] is True
    merged = read_results(fake.working / "results.jsonl")
    assert [r["task_id"] for r in merged] == [small_tasks[0].id]  # the smallest task only
    assert (fake.working / "arc-ttt-placeholder-run" / "timeline.jsonl").is_file()
    sub = json.loads((fake.working / "submission.json").read_text())
    assert validate_submission(sub, small_tasks) == []
    assert sub[small_tasks[0].id] == merged[0]["attempts"]


def test_placeholder_detection_by_ids_and_hash(tmp_path):
    from augment.tasks import load_dataset

    public = load_dataset("arc-agi-2/evaluation").tasks
    full = tmp_path / "full.json"
    full.write_text(json.dumps({t.id: {"train": t.to_json()["train"], "test": [{"input": x.tolist()} for x in t.test_inputs]} for t in public}))
    assert detect_placeholder(full, [t.id for t in public]).is_placeholder
    part = [t.id for t in public[:5]]  # a rehearsal's subset of evaluation tasks is a real run
    check = detect_placeholder(full, part)
    assert not check.is_placeholder and "5 of them" in check.reason
    other = tmp_path / "hidden.json"
    other.write_text("{}")
    assert not detect_placeholder(other, ["00000000"]).is_placeholder
    assert detect_placeholder(other, ["00000000"], [file_sha256(other)]).is_placeholder


def test_auto_mode_detects_the_public_file(tmp_path, monkeypatch, config):
    """main() on the 120 public evaluation ids switches to placeholder mode by itself."""
    import solve.kernel.main as kk
    from augment.tasks import load_dataset
    from solve.kernel.rehearse import FakeKaggle

    public = load_dataset("arc-agi-2/evaluation").tasks
    fake = FakeKaggle(tmp_path)
    fake.challenges.parent.mkdir(parents=True)
    fake.challenges.write_text(json.dumps({t.id: {"train": t.to_json()["train"], "test": [{"input": x.tolist()} for x in t.test_inputs]} for t in public}))
    ran = []
    monkeypatch.setattr(kk, "_run_placeholder", lambda args, clock, tasks, run: ran.append("placeholder"))
    monkeypatch.setattr(kk, "_run_all", lambda args, clock, tasks, work: ran.append("all"))
    argv = ["--challenges", str(fake.challenges), "--working", str(fake.working), "--config", str(config), "--no-watchdog"]
    assert kk.main(argv) == 0
    assert ran == ["placeholder"]
    assert validate_submission(json.loads((fake.working / "submission.json").read_text()), public) == []


def test_failed_run_still_leaves_a_valid_submission(tmp_path, small_tasks, config):
    fake = build_fake_kaggle(tmp_path, small_tasks[:2], "random:tiny")
    argv = kernel_argv(fake, config, 600, 0, ["solve.no_such_key=1"], ["--no-watchdog", "--min-start-s", "5"])
    assert main(argv) == 1  # the config error is reported, not raised into the notebook
    sub = json.loads((fake.working / "submission.json").read_text())
    assert validate_submission(sub, small_tasks[:2]) == []


def test_repair_replaces_invalid_entries(tmp_path, small_tasks):
    run = RunDir.open(tmp_path, small_tasks, None)
    good = run.submission[small_tasks[1].id]
    run.submission[small_tasks[0].id] = [{"attempt_1": [[11]]}]  # wrong keys and an invalid color
    problems = repair_submission(run, small_tasks)
    assert problems
    on_disk = json.loads(run.submission_path.read_text())
    assert validate_submission(on_disk, small_tasks) == []
    assert on_disk[small_tasks[1].id] == good  # valid entries are kept


def test_watchdog_hard_stops_a_hung_process():
    code = "import time\nfrom solve.kernel.main import Watchdog\nWatchdog(time.time() + 0.5).__enter__()\ntime.sleep(30)\n"
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=25)
    assert proc.returncode == 124
    assert time.time() - t0 < 15
    assert "hard stop" in proc.stdout
