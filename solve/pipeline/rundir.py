"""A run directory: the one place a run's results live, valid and resumable at every moment.

    DIR/submission.json   Kaggle format; placeholders for every task from the start, updated atomically
    DIR/results.jsonl     one JSON line per finished task (ok or failed, with stage and traceback)
    DIR/config.yaml       the resolved config plus versions and git commit (and the sandbox's isolation in force)
    DIR/report.md         written at the end: score (when solutions are known), time per stage, counts
    DIR/.lock             flock'ed while a run writes DIR; holds the writer's pid
    DIR/results.torn      bytes of torn results lines removed on open (only after a crash mid-write)

Running again with the same DIR skips tasks already in results.jsonl. Guarantees:
- one writer: `RunDir.open` takes an exclusive flock on DIR/.lock, held while any RunDir of DIR is
  alive in this process (re-entrant within the process); a second process is refused with the
  holder's pid. A launcher that holds the lock lets the processes it starts write DIR (`delegate_env`).
- no lost record: a record is appended with one O_APPEND write of the whole line and fsynced; a line
  torn by a kill mid-write is cut off (and saved to results.torn) when DIR is next opened, so the next
  record never glues onto it.
- one config: resuming DIR with a resolved config that differs from the saved one (other than
  RESUME_SAFE_KEYS) is refused, naming the keys, instead of mixing two configs in one results file.
- every id answered: an `augment.tasks.UnloadableTask` (an id whose task failed to parse) is recorded
  as failed at stage "load" with placeholder attempts and never handed to a placement.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import subprocess
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from augment.tasks import Task, TaskError, UnloadableTask
from solve.pipeline.stages import failed_record
from solve.select.submission import placeholder_submission, write_submission

LOCK_NAME = ".lock"
TORN_NAME = "results.torn"
# "<pid>:<dir>": set by a process that holds DIR's lock for the processes it launches (deepspeed ranks),
# which then write DIR without the lock of their own that they could never get.
LOCK_ENV = "ARC_TTT_RUNDIR_LOCK"
# Config keys that may differ between runs sharing one directory because they cannot change a result:
# placement.recycle_every only restarts a worker between tasks, and a task's result does not depend on
# which tasks ran before it in the same process (tested); placement.stagger_starts only orders the
# workers' model loads. Everything else, timeouts and worker counts included (they change what fits a
# deadline), must match.
# placement.cpus_per_worker and placement.gpus_per_worker only size Ray actors (a local run ignores them, as a
# per_gpu run's thread count is not in the config either), so a Ray run and a local run resume each other.
RESUME_SAFE_KEYS = frozenset({"placement.recycle_every", "placement.stagger_starts", "run.adapter_cache",
                              "placement.cpus_per_worker", "placement.gpus_per_worker"})  # cannot change any result
LOAD_STAGE = "load"

log = logging.getLogger(__name__)


class RunDirError(RuntimeError):
    """A run directory that cannot be used by this run (locked by another, or another config's)."""


class RunDirLocked(RunDirError):
    """Another process is writing the run directory."""


class ConfigMismatch(RunDirError):
    """The run directory holds results of a different config."""


def environment_info() -> dict[str, Any]:
    """Versions and git commit, so a results file says what produced it."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("arc-ttt", "torch", "transformers", "peft", "deepspeed", "numpy"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        info["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


# --- results.jsonl ---------------------------------------------------------------------------------


def read_results(path: Path) -> list[dict[str, Any]]:
    """Finished task records in file order. A line that does not parse (a torn write) is skipped, but a
    record glued onto its end (files written before appends repaired torn tails) is recovered."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        rec = _parse_record(line)
        if rec is not None:
            records.append(rec)
    return records


def _parse_record(line: str) -> dict[str, Any] | None:
    """The record on `line`, else the first complete record that starts inside it, else None."""
    starts = [0] + [i for i in _find_all(line, '{"task_id"') if i > 0]
    for start in starts:
        try:
            rec = json.loads(line[start:])
        except json.JSONDecodeError:
            continue  # torn prefix: try the next record start on this line
        if isinstance(rec, dict) and "task_id" in rec:
            return rec
    return None


def _find_all(text: str, needle: str) -> list[int]:
    found, i = [], text.find(needle)
    while i >= 0:
        found.append(i)
        i = text.find(needle, i + 1)
    return found


def append_line(path: Path, line: str) -> None:
    """Append one whole line durably: a single O_APPEND write (looped only if the kernel writes less),
    then fsync. A failed write (disk full) is cut back off so that no partial line is left behind."""
    data = memoryview(line.encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> list[str]:
    """Make `path` end at a line boundary; return a note for each change.

    A process killed mid-append leaves a last line without its newline; the next append would glue a
    whole record onto it, and the line would then parse as neither. A tail that is a complete record
    only lacks its newline and gets one; anything else is cut off and its bytes appended to
    results.torn next to it (kept for inspection, never read back)."""
    if not path.exists():
        return []
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return []
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return []
        keep = _last_newline(f, size) + 1
        f.seek(keep)
        tail = f.read()
        if _parse_record(tail.decode("utf-8", "replace")) is not None and tail.lstrip().startswith(b"{"):
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            note = f"{path}: its last record lacked a newline (a crash right after writing it); completed"
        else:
            with open(path.with_name(TORN_NAME), "ab") as torn:
                torn.write(tail + b"\n")
                torn.flush()
                os.fsync(torn.fileno())
            f.truncate(keep)
            note = (f"{path}: removed a torn last line ({len(tail)} bytes: a write cut off by a crash); "
                    f"its bytes are kept in {path.with_name(TORN_NAME)}")
        f.flush()
        os.fsync(f.fileno())
    log.warning(note)
    return [note]


def _last_newline(f: Any, size: int, chunk: int = 1 << 16) -> int:
    """Offset of the last b'\\n' in the open file (-1 when there is none), reading backwards."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        i = f.read(end - start).rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


def never_started(rec: dict[str, Any]) -> bool:
    """A record of a task skipped before its first stage because the global deadline was too close."""
    return rec.get("status") == "deadline" and not rec.get("stages") and (rec.get("error") or {}).get("stage") == "budget"


def is_load_failure(rec: dict[str, Any]) -> bool:
    """A record of a task id whose content could not be parsed (it holds placeholder attempts)."""
    return rec.get("status") == "failed" and (rec.get("error") or {}).get("stage") == LOAD_STAGE


def load_failure_record(task: UnloadableTask) -> dict[str, Any]:
    """The failed record of a task that could not be loaded: placeholder attempts, the loader's reason."""
    rec = failed_record(task, LOAD_STAGE, TaskError(task.source or "tasks", task.id, task.problem))
    rec["error"]["traceback"] = ""  # nothing raised: the loader reported the problem
    rec["load"] = {"test_inputs": len(task.test_inputs), "parsed": task.tests_read}
    return rec


# --- config.yaml -----------------------------------------------------------------------------------


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def config_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    fa, fb = _flat(a or {}), _flat(b or {})
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved config a run saved in DIR/config.yaml (None when there is none)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RunDirError(f"{path} is not valid YAML ({e}); cannot tell which config its results came from") from None
    return data.get("config") if isinstance(data, dict) else None


def check_same_config(run_dir: Path, config: dict[str, Any], records: Sequence[dict[str, Any]]) -> None:
    """Refuse to add results of `config` to a directory holding results of another config. Records of
    tasks that failed to load do not depend on the config and do not count."""
    if not any(not is_load_failure(r) for r in records):
        return
    saved = saved_config(run_dir)
    if saved is None:
        return
    diff = [k for k in config_diff(saved, config) if k not in RESUME_SAFE_KEYS]
    if diff:
        old, new = _flat(saved), _flat(config)
        shown = "; ".join(f"{k}: {old.get(k, '(absent)')!r} saved, {new.get(k, '(absent)')!r} now" for k in diff[:12])
        more = f" (and {len(diff) - 12} more)" if len(diff) > 12 else ""
        raise ConfigMismatch(
            f"{run_dir} holds results of a different config; {len(diff)} key(s) differ: {shown}{more}. "
            "Resume with the same config and --set values, or use a new directory."
        )


# --- the lock --------------------------------------------------------------------------------------


@dataclass
class _Held:
    fd: int | None  # None: the lock is held by the launcher named in LOCK_ENV
    count: int


_HELD: dict[Path, _Held] = {}  # resolved DIR -> this process's hold on DIR/.lock


def acquire_lock(run_dir: Path) -> Path:
    """Hold DIR/.lock exclusively (re-entrant within this process); returns the key to release."""
    key = Path(run_dir).resolve()
    held = _HELD.get(key)
    if held is not None:
        held.count += 1
        return key
    fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _lock_owner(fd)
        os.close(fd)
        if _delegated(key, owner):
            _HELD[key] = _Held(None, 1)
            return key
        who = f"pid {owner}" if owner is not None else "a process whose pid is not recorded"
        raise RunDirLocked(
            f"{key} is in use by another run ({who}, lock file {key / LOCK_NAME}); wait for it to end or "
            "stop it, or use another directory"
        ) from None
    except OSError as e:  # a file system without flock: run, but say that nothing guards the directory
        os.close(fd)
        log.warning("%s: cannot lock %s (%s); running without a lock", key, LOCK_NAME, e)
        _HELD[key] = _Held(None, 1)
        return key
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = _Held(fd, 1)
    return key


def release_lock(key: Path) -> None:
    """Drop one hold on DIR/.lock; the last one closes the descriptor, which releases the flock."""
    held = _HELD.get(key)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[key]
    if held.fd is not None:
        os.close(held.fd)


def _lock_owner(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _delegated(key: Path, owner: int | None) -> bool:
    """True when our launcher told us (LOCK_ENV) that it holds this directory's lock for us."""
    pid, _, where = os.environ.get(LOCK_ENV, "").partition(":")
    return owner is not None and pid == str(owner) and where == str(key)


# --- the run directory -----------------------------------------------------------------------------


@dataclass
class RunDir:
    path: Path
    tasks: Sequence[Task]
    submission: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    isolation: dict[str, str] | None = None  # the program sandbox's, once noted (`note_isolation`)
    notes: list[str] = field(default_factory=list)  # repairs made on open (torn lines), for the caller to show
    _release: Callable[[], Any] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path, tasks: Sequence[Task], config: dict[str, Any] | None) -> RunDir:
        """Create or resume DIR: lock it, keep finished tasks, write a complete, valid submission now.

        config=None leaves DIR/config.yaml as it is (the Kaggle kernel opens DIR to write placeholders
        before its config is loaded, and again to finalize, and must not clobber run_tasks' record).
        Raises RunDirLocked (another process writes DIR) or ConfigMismatch (DIR holds results of
        another config). The lock is held until `close()` or until this object is garbage."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        key = acquire_lock(path)
        run = cls(path, tasks)
        run._release = weakref.finalize(run, release_lock, key)
        try:
            run._load(config)
        except BaseException:
            run.close()
            raise
        return run

    def _load(self, config: dict[str, Any] | None) -> None:
        self.notes += repair_torn_tail(self.results_path)
        records = read_results(self.results_path)
        if config is not None:
            check_same_config(self.path, config, records)
        by_id = {t.id: t for t in self.tasks}
        self.submission = placeholder_submission(self.tasks)
        for rec in records:
            # A load failure stays in the submission even for a caller whose task list lacks the id
            # (a deepspeed rank reads only the tasks that load): every id of the source is answered.
            if rec.get("task_id") in self.submission or is_load_failure(rec):
                self.done[rec["task_id"]] = rec
                self.submission[rec["task_id"]] = rec["attempts"]
        for tid, rec in [(tid, rec) for tid, rec in self.done.items() if not _final(rec, by_id.get(tid))]:
            del self.done[tid]
            if is_load_failure(rec):  # the task loads now: placeholders of its real test inputs
                self.submission[tid] = placeholder_submission([by_id[tid]])[tid]
        for task in self.tasks:
            if isinstance(task, UnloadableTask) and task.id not in self.done:
                rec = load_failure_record(task)
                append_line(self.results_path, json.dumps(rec) + "\n")
                self.done[task.id] = rec
                self.submission[task.id] = rec["attempts"]
        if config is not None:
            cfg_text = yaml.safe_dump({"config": config, "environment": environment_info()}, sort_keys=False)
            (self.path / "config.yaml").write_text(cfg_text)
        self.write_submission()

    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def submission_path(self) -> Path:
        return self.path / "submission.json"

    def pending(self) -> list[Task]:
        return [t for t in self.tasks if t.id not in self.done]

    def write_submission(self) -> None:
        write_submission(self.submission, self.submission_path)

    def note_isolation(self, isolation: dict[str, str]) -> None:
        """Record the program sandbox's isolation in force (`Sandbox.isolation`) as config.yaml's `isolation:`.

        A run's numbers mean something only if programs could not read the answers; this says whether they could."""
        self.isolation = dict(isolation)
        cfg_path = self.path / "config.yaml"
        data = (yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else None) or {}
        data["isolation"] = self.isolation
        cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def record(self, rec: dict[str, Any]) -> None:
        """Append one finished task, then update the submission (both durable before returning)."""
        append_line(self.results_path, json.dumps(rec) + "\n")
        self.done[rec["task_id"]] = rec
        self.submission[rec["task_id"]] = rec["attempts"]
        self.write_submission()

    def delegate_env(self) -> dict[str, str]:
        """Environment for processes this one starts to write DIR while it holds the lock for them."""
        key = self.path.resolve()
        held = _HELD.get(key)
        if held is None or held.fd is None:
            inherited = os.environ.get(LOCK_ENV, "")
            return {LOCK_ENV: inherited} if inherited.endswith(f":{key}") else {}
        return {LOCK_ENV: f"{os.getpid()}:{key}"}

    def close(self) -> None:
        """Release this object's hold on DIR's lock (idempotent; also done when it is garbage)."""
        if self._release is not None:
            self._release()


def _final(rec: dict[str, Any], task: Task | None) -> bool:
    """Whether a record ends its task for good. Not final: a task the global deadline never let start
    (a resumed run, with time again, tries it), and a load failure of a task that now loads."""
    if never_started(rec):
        return False
    return not (is_load_failure(rec) and task is not None and not isinstance(task, UnloadableTask))
