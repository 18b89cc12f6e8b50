"""The worker process of the sandbox: one warm interpreter that forks a confined child per program.

Run as `python -m solve.sandbox.worker '<settings json>'` by `Sandbox`, never imported for side effects.
A worker first resets what it inherited (signal dispositions, signal mask, umask), imports numpy, the
stdlib modules programs commonly use and `solve.dsl` once, compiles the seccomp policy and builds the
Landlock ruleset once, then loops: read a job (program source + grids) from the parent, fork a child
for it, relay the child's results, reply. The child (see `_child`) drops root, sets rlimits, restricts
its reads (Landlock), loads seccomp, runs the program on each grid, converts each result to a
canonical grid itself and writes plain bytes to a pipe. The worker trusts none of those bytes: every
frame is size-capped and re-validated here.

The hello (the worker's first frame) says what confinement is in force, as plain strings:
  seccomp   'on' | 'on (by number: name, ...)' | 'off' | 'unavailable: <why>'
  landlock  'abi N' | 'unavailable: <why>'
  uid       'nobody' | 'nobody+dac_read_search' | 'unchanged (not root)' | 'unchanged (root: <why>)'

Framing on every pipe: 4-byte big-endian length, then the payload. Parent <-> worker payloads are JSON.
Child -> worker payloads start with one tag byte:
  b"O" + h + w + h*w cell bytes (each 0..9)  one grid's output
  b"E" + ascii error class                     one grid failed (exception:X, memory, invalid_output:reason)
  b"P" + ascii error class                     the program failed before any grid (syntax, no_transform, ...)
  b"D" + utf-8 captured stdout/stderr          all done
Grids travel between parent and worker as text "HxW:digits" (row-major), e.g. "2x2:0120".
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import signal
import sys
import time

from solve.sandbox.landlock import Ruleset, allowed_paths, set_no_new_privs
from solve.sandbox.limits import CPU_HARD_EXTRA_S, REAP_GRACE_S, cpu_limit_s
from solve.sandbox.wire import MAX_SIDE, SEED, FrameReader, cells_to_wire, frame, write_all

_ERROR_CLASS = re.compile(r"^(?:syntax|no_transform|memory|timeout|crash|exception:[A-Za-z0-9_.]{1,80}|invalid_output:[a-z_]{1,40})$")
NOBODY = 65534
CHILD_FAILED = 70  # exit status of a child whose harness (not the program) failed
MAX_REQUEST = 1 << 30  # bytes in one request frame from the parent
_PRELOAD = (
    "numpy numpy.random resource math cmath itertools functools collections operator copy random re heapq bisect typing dataclasses "
    "string statistics fractions decimal enum array json queue solve.sandbox.child"
).split()
# Preloaded when they import: programs do `from solve.dsl import *`, which then costs a dict lookup instead of
# ~12 ms of imports per program. A package that fails to import must not stop the sandbox; the hello says so.
_PRELOAD_OPTIONAL = ("solve.dsl",)
# What a fresh `python` has (CPython sets these at startup); every other catchable signal is SIG_DFL.
_PYTHON_DISPOSITIONS = {signal.SIGINT: signal.default_int_handler, signal.SIGPIPE: signal.SIG_IGN, signal.SIGXFSZ: signal.SIG_IGN}


# ------------------------------------------------------------------------------------------------ the worker
def main() -> None:
    _reset_inherited_state()
    settings = json.loads(sys.argv[1])
    settings["debug"] = os.environ.get("ARC_TTT_SANDBOX_DEBUG") == "1"  # tracebacks of harness failures
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # no threads: clone is denied
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Private copies of the protocol pipes; 0/1/2 point at /dev/null so nothing stray reaches the parent.
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if settings["debug"] else (0, 1, 2):  # debug keeps stderr for tracebacks
        os.dup2(devnull, fd)
    for name in _PRELOAD:
        __import__(name)
    preload_failed = _preload_optional()
    # Seeded once here and never used by the worker: every forked child starts from this state
    # (`random` reseeds at fork, so the child seeds that one itself).
    import numpy as np

    np.random.seed(SEED)
    loader, seccomp_state = _seccomp(settings)
    privileges = Privileges.plan()
    ruleset, landlock_state = _landlock()
    # Once here instead of in every child (which inherit both): no_new_privs, which Landlock and seccomp
    # need without CAP_SYS_ADMIN (the worker never execs), and keep-caps for a child that keeps one.
    set_no_new_privs()
    privileges.prepare()
    import gc

    gc.collect()
    gc.freeze()  # children then never touch (and copy) the pages of these long-lived objects
    worker = _Worker(settings, _Confinement(loader, privileges, ruleset), (inp, out, devnull))
    hello = {
        "hello": True, "pid": os.getpid(), "seccomp": seccomp_state, "landlock": landlock_state,
        "uid": privileges.state, "preload_failed": preload_failed,
    }
    write_all(out, frame(json.dumps(hello).encode()))
    reader = FrameReader(inp, MAX_REQUEST)
    while (request := reader.next(float("inf"))) is not None:
        reply, finished_pid = worker.run(json.loads(request))
        write_all(out, frame(json.dumps(reply).encode()))
        if finished_pid:  # reaped after replying: the child's teardown overlaps the parent's next step
            os.waitpid(finished_pid, 0)


def _reset_inherited_state() -> None:
    """Give programs the process state a fresh interpreter has, however the parent was started.

    Ignored dispositions and the signal mask survive fork and exec: a parent started as `cmd &` by a
    shell without job control ignores SIGINT, one started by a supervisor may block signals, and
    without this every program child would inherit that."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # the two that cannot be caught, ignored or blocked
            signal.signal(sig, _PYTHON_DISPOSITIONS.get(sig, signal.SIG_DFL))
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.umask(0o022)


def _preload_optional() -> dict[str, str]:
    """Import `_PRELOAD_OPTIONAL`; the ones that fail, with why (reported in the hello, never fatal)."""
    failed = {}
    for name in _PRELOAD_OPTIONAL:
        try:
            __import__(name)
        except Exception as e:  # any error of that package's own code; programs importing it will meet it too
            failed[name] = f"{type(e).__name__}: {e}"[:300]
    return failed


def _seccomp(settings: dict):
    """(loader or None, state): state is 'on', 'on (by number: ...)', 'off' or 'unavailable: <why>'."""
    if not settings["seccomp"]:
        return None, "off"
    try:
        from solve.sandbox.seccomp_policy import BpfLoader, build_policy

        policy = build_policy()
        return BpfLoader(policy.bpf), policy.describe()
    except (ImportError, OSError, RuntimeError, AttributeError) as e:
        return None, f"unavailable: {type(e).__name__}: {e}"


def _landlock():
    """(ruleset or None, state): state is 'abi N' or 'unavailable: <why>'."""
    try:
        ruleset = Ruleset(allowed_paths())
    except OSError as e:
        return None, f"unavailable: {e.strerror or e}"
    return ruleset, f"abi {ruleset.abi}"


class Privileges:
    """How a child running as root becomes uid/gid nobody before the program runs.

    Root could ignore RLIMIT_NPROC, write root-owned files, read what it likes: children drop to nobody
    with no supplementary groups. Where nobody cannot read the interpreter's own files (Python under
    /root, mode 0700), the child keeps exactly one capability, CAP_DAC_READ_SEARCH (read any file past
    permission bits); Landlock then decides what it may read. `state`: 'nobody', 'nobody+dac_read_search',
    'unchanged (not root)' or 'unchanged (root: <why>)'."""

    _PR_SET_KEEPCAPS = 8
    _CAP_VERSION_3 = 0x20080522
    _CAP_DAC_READ_SEARCH = 2

    def __init__(self, mode: str | None, state: str):
        self.mode, self.state = mode, state
        self._libc = ctypes.CDLL(None, use_errno=True) if mode == "keep_read" else None
        # capset's arguments, built once: version 3 header, then (effective, permitted, inheritable) x 2 words
        cap = 1 << self._CAP_DAC_READ_SEARCH
        self._cap_header = (ctypes.c_uint32 * 2)(self._CAP_VERSION_3, 0)
        self._cap_data = (ctypes.c_uint32 * 6)(cap, cap, 0, 0, 0, 0)

    @classmethod
    def plan(cls) -> Privileges:
        if os.geteuid() != 0:
            return cls(None, "unchanged (not root)")
        for mode, state in (("plain", "nobody"), ("keep_read", "nobody+dac_read_search")):
            if cls(mode, state).can_import():
                return cls(mode, state)
        return cls(None, "unchanged (root: uid nobody cannot read the interpreter's files)")

    def can_import(self) -> bool:
        """Whether a child dropped this way can list every import directory (checked in a throwaway fork)."""
        dirs = [p for p in sys.path if p and os.path.isdir(p)]  # checked as root: nobody's stat may fail
        pid = os.fork()
        if pid == 0:
            try:
                self.prepare()
                self.drop()
                for path in dirs:
                    os.listdir(path)
            except BaseException:  # any failure means 'no'; the status carries it, the fork must not return
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def prepare(self) -> None:
        """In the worker, once: keep the permitted capabilities across setuid (inherited by children, trimmed there)."""
        if self.mode == "keep_read" and self._libc.prctl(self._PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"PR_SET_KEEPCAPS: {os.strerror(e)}")

    def drop(self) -> None:
        """Become nobody (as planned; a no-op when not root). Raises OSError on failure: never run as root by accident."""
        if self.mode is None:
            return
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        if self.mode == "keep_read" and self._libc.capset(self._cap_header, self._cap_data) != 0:  # only DAC_READ_SEARCH
            e = ctypes.get_errno()
            raise OSError(e, f"capset: {os.strerror(e)}")


class _Confinement:
    """Everything a child applies to itself before the program's first byte, in order."""

    def __init__(self, loader, privileges: Privileges, ruleset):
        self.loader, self.privileges, self.ruleset = loader, privileges, ruleset

    def apply(self, s: dict, n_grids: int) -> None:
        self.privileges.drop()  # first: root could ignore rlimits and write anywhere
        cpu = cpu_limit_s(s["timeout_s"], s["cpu_s"], n_grids)
        for lim, soft, hard in (
            (resource.RLIMIT_AS, s["memory_mb"] << 20, s["memory_mb"] << 20),
            # soft < hard: SIGXCPU ('timeout') first; SIGKILL at the hard limit for a program that catches it
            (resource.RLIMIT_CPU, cpu, cpu + CPU_HARD_EXTRA_S),
            (resource.RLIMIT_FSIZE, 0, 0),
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_NPROC, 0, 0),  # no new processes or threads (for a non-root uid) even without seccomp
        ):
            resource.setrlimit(lim, (soft, hard))
        if self.ruleset is not None:
            self.ruleset.restrict()  # sets no_new_privs, which Landlock needs without CAP_SYS_ADMIN
        if self.loader is not None:
            self.loader.load()


class _Worker:
    def __init__(self, settings: dict, confinement: _Confinement, fds: tuple[int, int, int]):
        self.s, self.confinement, self.fds = settings, confinement, fds

    def run(self, job: dict) -> tuple[dict, int | None]:
        """The reply, and the pid of a child already SIGKILLed but not yet reaped (None if reaped)."""
        src, grids = job["src"], job["grids"]
        n = len(grids)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _child(w, src, grids, self.s, self.confinement, self.fds)
            except BaseException:  # the harness failed (not the program): exit status CHILD_FAILED says so
                if self.s.get("debug"):
                    import traceback

                    os.write(2, traceback.format_exc().encode())
            finally:
                os._exit(CHILD_FAILED)
        os.close(w)
        try:
            return self._collect(pid, r, n)
        finally:
            os.close(r)

    def _collect(self, pid: int, r: int, n: int) -> tuple[dict, int | None]:
        cap = n * (3 + MAX_SIDE * MAX_SIDE + 8) + 4 * self.s["max_output_chars"] + 4096
        reader = FrameReader(r, cap, cap)  # one child's whole output is bounded: cap the total too
        results: list[list] = []  # [grid text or None, error or None]
        program_error, stdout, detail, done = None, "", None, False
        deadline = time.monotonic() + self.s["timeout_s"]
        try:
            while not done:
                payload = reader.next(deadline)
                if payload is None:
                    break
                tag, body = payload[:1], payload[1:]
                if tag in (b"O", b"E") and len(results) < n:
                    results.append(_grid_result(tag, body))
                    deadline = time.monotonic() + self.s["timeout_s"]
                elif tag == b"P" and not results:
                    program_error = _error_class(body)
                    results = [[None, program_error]] * n
                elif tag == b"D" and len(results) == n:
                    stdout, done = body.decode("utf-8", "replace")[: self.s["max_output_chars"] + 20], True
                else:
                    raise ValueError(f"unexpected frame {tag!r} after {len(results)} of {n} results")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            program_error, detail = "timeout", f"no result within {self.s['timeout_s']}s for grid {len(results)}"
        except ValueError as e:  # the child broke the protocol: its claims are void
            os.kill(pid, signal.SIGKILL)
            results, program_error, detail = [], "crash", f"protocol violation: {e}"
        if done:  # everything is reported; a child that only claims to be done must not linger either
            os.kill(pid, signal.SIGKILL)
            return {"results": results, "error": program_error, "stdout": stdout, "detail": None}, pid
        status, cpu_used = _reap(pid)
        if program_error is None:
            program_error, detail = _classify_exit(status, cpu_used, cpu_limit_s(self.s["timeout_s"], self.s["cpu_s"], n))
        results += [[None, program_error]] * (n - len(results))
        return {"results": results, "error": program_error, "stdout": stdout, "detail": detail}, None


def _grid_result(tag: bytes, body: bytes) -> list:
    if tag == b"E":
        return [None, _error_class(body)]
    if len(body) < 2:
        raise ValueError("short output frame")
    h, w, cells = body[0], body[1], body[2:]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or len(cells) != h * w or (cells and max(cells) > 9):
        raise ValueError(f"invalid grid frame {h}x{w} with {len(cells)} cells")
    return [cells_to_wire(h, w, cells), None]


def _error_class(body: bytes) -> str:
    text = body.decode("ascii", "replace")
    if not _ERROR_CLASS.match(text):
        raise ValueError(f"invalid error class {text[:60]!r}")
    return text


def _reap(pid: int) -> tuple[int, float]:
    """Wait for a child that stopped reporting (one still running after a short grace is killed).

    Returns its wait status and the CPU seconds it used (user + system), which tell a CPU-limit kill apart."""
    grace = time.monotonic() + REAP_GRACE_S
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            return status, usage.ru_utime + usage.ru_stime
        if time.monotonic() > grace:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage.ru_utime + usage.ru_stime
        time.sleep(0.0002)


def _classify_exit(status: int, cpu_used: float, cpu_limit: int) -> tuple[str, str]:
    """The error class of a child that died without reporting everything, and a human-readable detail."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return "timeout", f"CPU limit of {cpu_limit}s reached (SIGXCPU)"
        if sig == signal.SIGKILL and cpu_used >= cpu_limit:  # SIGXCPU caught or ignored: the hard limit killed it
            return "timeout", f"CPU limit of {cpu_limit}s reached (SIGKILL at the hard limit, {cpu_used:.1f}s used)"
        return "crash", f"killed by {name}"
    code = os.WEXITSTATUS(status)
    return "crash", ("sandbox harness failed" if code == CHILD_FAILED else f"exited with status {code}")


# ------------------------------------------------------------------------------------------------- the child
def _child(wfd: int, src: str, grids: list[str], s: dict, confinement: _Confinement, fds: tuple[int, int, int]) -> None:
    """Runs in the forked child; never returns (ends with os._exit)."""
    inp, out, devnull = fds
    if not s.get("debug"):
        os.dup2(devnull, 2)
    os.close(inp)
    os.close(out)  # the program must not be able to write to the parent
    confinement.apply(s, len(grids))
    from solve.sandbox.child import run_program  # preloaded by the worker; import is a dict lookup

    run_program(wfd, src, grids, s["max_output_chars"])
    os._exit(0)


if __name__ == "__main__":
    main()
