"""The worker process of the sandbox: one warm interpreter that forks a confined child per program.

Run as `python -m solve.sandbox.worker '<settings json>'` by `Sandbox`, never imported for side effects.
A worker imports numpy and the stdlib modules programs commonly use once, compiles the seccomp policy
once, then loops: read a job (program source + grids) from the parent, fork a child for it, relay the
child's results, reply. The child (see `_child`) drops privileges, sets rlimits, loads seccomp, runs the
program on each grid, converts each result to a canonical grid itself and writes plain bytes to a pipe.
The worker trusts none of those bytes: every frame is size-capped and re-validated here.

Framing on every pipe: 4-byte big-endian length, then the payload. Parent <-> worker payloads are JSON.
Child -> worker payloads start with one tag byte:
  b"O" + h + w + h*w cell bytes (each 0..9)  one grid's output
  b"E" + ascii error class                     one grid failed (exception:X, memory, invalid_output:reason)
  b"P" + ascii error class                     the program failed before any grid (syntax, no_transform, ...)
  b"D" + utf-8 captured stdout/stderr          all done
Grids travel between parent and worker as text "HxW:digits" (row-major), e.g. "2x2:0120".
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

from solve.sandbox.wire import MAX_SIDE, SEED, FrameReader, cells_to_wire, frame, write_all

_ERROR_CLASS = re.compile(r"^(?:syntax|no_transform|memory|timeout|crash|exception:[A-Za-z0-9_.]{1,80}|invalid_output:[a-z_]{1,40})$")
NOBODY = 65534
CHILD_FAILED = 70  # exit status of a child whose harness (not the program) failed
_PRELOAD = (
    "numpy numpy.random resource math cmath itertools functools collections operator copy random re heapq bisect typing dataclasses "
    "string statistics fractions decimal enum array json queue solve.sandbox.child"
).split()


# ------------------------------------------------------------------------------------------------ the worker
def main() -> None:
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
    # Seeded once here and never used by the worker: every forked child starts from this state
    # (`random` reseeds at fork, so the child seeds that one itself).
    import numpy as np

    np.random.seed(SEED)
    loader, seccomp_state = _seccomp(settings)
    settings["drop_uid"] = os.geteuid() == 0 and _nobody_can_import()
    import gc

    gc.collect()
    gc.freeze()  # children then never touch (and copy) the pages of these long-lived objects
    worker = _Worker(settings, loader, (inp, out, devnull))
    write_all(out, frame(json.dumps(
        {"hello": True, "pid": os.getpid(), "seccomp": seccomp_state, "drop_uid": settings["drop_uid"]}
    ).encode()))
    reader = FrameReader(inp, 1 << 30)
    while (request := reader.next(float("inf"))) is not None:
        reply, finished_pid = worker.run(json.loads(request))
        write_all(out, frame(json.dumps(reply).encode()))
        if finished_pid:  # reaped after replying: the child's teardown overlaps the parent's next step
            os.waitpid(finished_pid, 0)


def _nobody_can_import() -> bool:
    """Whether uid nobody can read every import directory (not so when Python lives under /root)."""
    dirs = [p for p in sys.path if p and os.path.isdir(p)]  # checked as root: nobody's stat may fail
    pid = os.fork()
    if pid == 0:
        try:
            _become_nobody()
            for path in dirs:
                os.listdir(path)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _seccomp(settings: dict):
    if not settings["seccomp"]:
        return None, "off"
    try:
        from solve.sandbox.seccomp_policy import BpfLoader, build_bpf

        return BpfLoader(build_bpf()), "on"
    except (ImportError, OSError, RuntimeError, AttributeError) as e:
        return None, f"unavailable: {type(e).__name__}: {e}"


class _Worker:
    def __init__(self, settings: dict, loader, fds: tuple[int, int, int]):
        self.s, self.loader, self.fds = settings, loader, fds

    def run(self, job: dict) -> tuple[dict, int | None]:
        """The reply, and the pid of a child already SIGKILLed but not yet reaped (None if reaped)."""
        src, grids = job["src"], job["grids"]
        n = len(grids)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _child(w, src, grids, self.s, self.loader, self.fds)
            except BaseException:
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

    def _collect(self, pid: int, r: int, n: int) -> dict:
        cap = n * (3 + MAX_SIDE * MAX_SIDE + 8) + 4 * self.s["max_output_chars"] + 4096
        reader = FrameReader(r, cap)
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
        status = _reap(pid)
        if program_error is None:
            program_error, detail = _classify_exit(status)
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


def _reap(pid: int) -> int:
    """Wait for a child that stopped reporting; one still running after a short grace is killed."""
    grace = time.monotonic() + 0.5
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            return status
        if time.monotonic() > grace:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.0002)


def _classify_exit(status: int) -> tuple[str, str]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return ("timeout" if sig == signal.SIGXCPU else "crash"), f"killed by {name}"
    code = os.WEXITSTATUS(status)
    return "crash", ("sandbox harness failed" if code == CHILD_FAILED else f"exited with status {code}")


# ------------------------------------------------------------------------------------------------- the child
def _child(wfd: int, src: str, grids: list[str], s: dict, loader, fds: tuple[int, int, int]) -> None:
    """Runs in the forked child; never returns (ends with os._exit)."""
    inp, out, devnull = fds
    if not s.get("debug"):
        os.dup2(devnull, 2)
    os.close(inp)
    os.close(out)  # the program must not be able to write to the parent
    _confine(s, len(grids), loader)
    from solve.sandbox.child import run_program  # preloaded by the worker; import is a dict lookup

    run_program(wfd, src, grids, s["max_output_chars"])
    os._exit(0)


def _confine(s: dict, n_grids: int, loader) -> None:
    import math
    import resource

    mem = s["memory_mb"] << 20
    cpu = s["cpu_s"] or math.ceil(s["timeout_s"] * max(n_grids, 1)) + 1
    if s["drop_uid"]:  # root could ignore rlimits and write anywhere: become nobody first
        _become_nobody()
    for lim, value in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),  # no new processes or threads (for a non-root uid) even without seccomp
    ):
        resource.setrlimit(lim, (value, value))
    if loader is not None:
        loader.load()


if __name__ == "__main__":
    main()
