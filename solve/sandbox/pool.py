"""Run untrusted `transform(grid)` programs in a persistent pool of isolated worker processes.

Process tree and trade-offs
---------------------------
parent (this module; may hold a torch model) --subprocess, fresh interpreter--> N warm workers
(`solve.sandbox.worker`: numpy and common stdlib modules imported once, seccomp policy compiled once)
--os.fork per program--> one confined child that runs the program on all of that program's grids.

* Workers are started with `subprocess` (fork+exec of a new interpreter), never forked from the parent,
  so they inherit no torch/tokenizer threads or CUDA state. Their env pins OPENBLAS/OMP/MKL threads to 1
  and TOKENIZERS_PARALLELISM=false. They run in their own session, with cwd "/".
* One fork per *program* (not per grid, not per batch): all grids of a program share one child, which
  amortizes the fork (~0.6 ms here, ~1.5 ms with exit and reaping) over the grids, while every program
  starts from the same clean worker image: patched builtins or numpy, module globals, signal handlers,
  random state, leaked threads or memory cannot reach the next program. Reusing a child for a second
  program would be faster and is not done: no in-process reset undoes everything a program can patch.
  Every program starts from the same random state: np.random is seeded (0) once in the worker, which
  never draws from it; `random` reseeds itself at fork, so the child seeds it (0).
* Timeouts are per grid (`SandboxConfig.timeout_s`; the first grid's window also covers compiling and the
  program's top level). The worker SIGKILLs a late child; that grid and the rest read 'timeout'. RLIMIT_CPU
  (ceil(timeout_s x grids) + 1 by default) backs this up if a worker is gone. The parent also gives each
  call a generous deadline; a worker that misses it, dies or breaks the protocol is killed and replaced,
  and only that program is recorded as 'crash'.

What is enforced where (in each program child, before the program's first byte is compiled)
---------------------------------------------------------------------------------------------
* Always (rlimits, POSIX): RLIMIT_AS = memory_mb (MemoryError -> 'memory'), RLIMIT_CPU, RLIMIT_FSIZE = 0
  (no bytes written to regular files), RLIMIT_CORE = 0, RLIMIT_NPROC = 0 (no processes or threads; holds
  for any non-root uid). When running as root the child first drops to uid/gid 65534 (nobody, no
  supplementary groups), so it cannot raise its limits, kill root processes or write root-owned files.
  The child's fds 0/1/2 are /dev/null and it holds no fd to the parent; print() goes to a capped buffer.
* seccomp (Linux + libseccomp via pyseccomp; see `solve.sandbox.seccomp_policy` for the list): fork/clone/exec,
  signals to any process, sockets, opening files for writing, file system changes, raising limits,
  ptrace and similar escape hatches fail with EPERM, including from ctypes.
* Fallback: without seccomp (non-Linux, pyseccomp or libseccomp missing) the sandbox warns once and runs
  with the rlimits and uid drop only. Then a program running as a non-root user without the uid drop
  *can* signal or write what that user can: run it in a container.
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
from solve.sandbox.wire import FrameReader, cells_to_wire, frame, wire_to_cells, write_all

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the `solve` package
_STARTUP_S = 60.0  # a worker imports numpy; generous for a loaded machine
_CALL_SLACK_S = 10.0  # parent-side margin over the worker's own per-grid deadlines
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "ARC_TTT_SANDBOX_DEBUG")
_warned_no_seccomp = False
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
    """The worker died, hung or spoke garbage; it must be replaced."""


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
        self.reader = FrameReader(self.proc.stdout.fileno(), 64 << 20)
        self.hello: dict | None = None

    def wait_ready(self) -> dict:
        self.hello = self._recv(time.monotonic() + _STARTUP_S)
        return self.hello

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
    """A pool of sandbox workers; a context manager. Thread-safe: concurrent `run_many` calls share workers."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.size = self.config.workers or os.cpu_count() or 1
        self._settings = {
            "timeout_s": self.config.timeout_s, "memory_mb": self.config.memory_mb, "cpu_s": self.config.cpu_s,
            "max_output_chars": self.config.max_output_chars, "seccomp": self.config.seccomp,
        }
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._closed = False
        workers = [_Worker(self._settings) for _ in range(self.size)]  # start all, then wait: imports overlap
        try:
            for w in workers:
                w.wait_ready()
        except _WorkerGone as e:
            for w in workers:
                w.kill()
            raise RuntimeError(f"sandbox worker failed to start: {e}") from None
        self.seccomp_state: str = workers[0].hello["seccomp"]
        self._warn_if_unconfined()
        for w in workers:
            self._idle.put(w)
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="sandbox")

    @property
    def seccomp_active(self) -> bool:
        return self.seccomp_state == "on"

    def _warn_if_unconfined(self) -> None:
        global _warned_no_seccomp
        if not self.config.seccomp or self.seccomp_active:
            return
        with _warn_lock:
            if not _warned_no_seccomp:
                _warned_no_seccomp = True
                warnings.warn(
                    f"seccomp is {self.seccomp_state}; programs run with rlimits only", RuntimeWarning, stacklevel=3
                )

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
        them as lists of lists of ints.
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
        timeout = self.config.timeout_s * max(n, 1) + _CALL_SLACK_S
        worker = self._idle.get()
        start = time.perf_counter()
        try:
            reply = worker.call(request, timeout)
            return _record(program_id, reply, time.perf_counter() - start)
        except _WorkerGone as e:
            seconds = time.perf_counter() - start
            worker.kill()
            worker = self._replacement()
            return RunRecord(program_id, (GridResult(None, "crash"),) * n, seconds, "crash", "", str(e))
        finally:
            self._idle.put(worker)

    def _replacement(self) -> _Worker:
        worker = _Worker(self._settings)
        worker.wait_ready()
        return worker

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break


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

