"""What runs inside the forked, confined child: execute one program on each grid and report bytes.

Each `transform` call gets a fresh list of lists of ints (row-major), so a program that mutates its
input cannot affect the next grid. A result is converted to a canonical grid here, with exact type
checks and without calling methods of objects the program made (beyond numpy's own conversion of an
exact `np.ndarray`): lists, tuples or 1-D/2-D integer ndarrays; cells `int` or numpy integer scalars
(never bool or float) in 0..9; rectangular, 1x1..30x30. Whatever the program does to this process
(patching builtins, numpy or this module) can only change what it reports about its own outputs;
the worker re-validates every byte, and the next program runs in a fresh fork.
"""

from __future__ import annotations

import builtins
import random
import re

import numpy as np

from solve.sandbox.wire import MAX_SIDE, SEED, frame, wire_to_cells, write_all

_NP_INTS = frozenset(np.dtype(c).type for c in "bBhHiIlLqQ")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.]")


class CappedText:
    """A write-only text stream that keeps the first `cap` characters (stdout and stderr of the program)."""

    def __init__(self, cap: int):
        self.cap, self.size, self.parts, self.truncated = cap, 0, [], False

    def write(self, s: str) -> int:
        if type(s) is not str:
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.cap - self.size
        if len(s) > room:
            self.truncated = True
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(len(s), room)
        return len(s)

    def flush(self) -> None:
        return None

    def text(self) -> str:
        return "".join(self.parts) + ("\n[output truncated]" if self.truncated else "")


def run_program(wfd: int, src: str, grids: list[str], max_chars: int) -> None:
    import sys

    captured = CappedText(max_chars)
    sys.stdout = sys.stderr = captured
    sys.stdin = None
    # `random` reseeds itself from urandom in every forked child (os.register_at_fork), so seed it here;
    # np.random keeps the state the worker seeded once.
    random.seed(SEED)
    fn = _load(wfd, src)
    if fn is not None:
        for text in grids:
            write_all(wfd, frame(_call(fn, text)))
    write_all(wfd, frame(b"D" + captured.text().encode("utf-8", "replace")))


def _load(wfd: int, src: str):
    """Compile and run the program's top level; returns transform, or reports a P frame and returns None."""
    try:
        code = compile(src, "<program>", "exec", dont_inherit=True)
    except MemoryError:
        return _program_error(wfd, "memory")
    except BaseException:  # SyntaxError, ValueError (null bytes), RecursionError (deep nesting), ...
        return _program_error(wfd, "syntax")
    namespace = {"__name__": "program", "__builtins__": builtins}
    try:
        exec(code, namespace)
    except BaseException as e:  # the program's own failure at top level, recorded by class
        return _program_error(wfd, _exception_class(e))
    fn = namespace.get("transform")
    if not callable(fn):
        return _program_error(wfd, "no_transform")
    return fn


def _program_error(wfd: int, error: str) -> None:
    write_all(wfd, frame(b"P" + error.encode("ascii")))
    return None


def _call(fn, text: str) -> bytes:
    h, w, cells = wire_to_cells(text)
    grid = [list(cells[i * w : (i + 1) * w]) for i in range(h)]
    try:
        result = fn(grid)
    except BaseException as e:  # includes SystemExit and KeyboardInterrupt raised by the program
        return b"E" + _exception_class(e).encode("ascii")
    try:
        converted = canonical(result)
    except MemoryError:
        return b"E" + b"memory"
    if isinstance(converted, str):
        return b"E" + converted.encode("ascii")
    h, w, cells = converted
    return b"O" + bytes((h, w)) + cells


def _exception_class(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "memory"
    name = _SAFE_NAME.sub("_", type(e).__name__)[:80] or "unnamed"
    return f"exception:{name}"


def canonical(value) -> tuple[int, int, bytes] | str:
    """(height, width, cell bytes) for a valid grid, else an 'invalid_output:<reason>' string."""
    if type(value) is np.ndarray:
        return _from_array(value)
    if type(value) is not list and type(value) is not tuple:
        return "invalid_output:type"
    h = len(value)
    if not 1 <= h <= MAX_SIDE:
        return "invalid_output:shape"
    cells = bytearray()
    width = -1
    for row in value:
        row_cells = _row(row)
        if isinstance(row_cells, str):
            return row_cells
        if width == -1:
            width = len(row_cells)
            if not 1 <= width <= MAX_SIDE:
                return "invalid_output:shape"
        elif len(row_cells) != width:
            return "invalid_output:ragged"
        cells += row_cells
    return h, width, bytes(cells)


def _row(row) -> bytes | str:
    if type(row) is np.ndarray:
        if row.ndim != 1:
            return "invalid_output:shape"
        if row.dtype.kind not in "iu":
            return "invalid_output:dtype"
        if row.size > MAX_SIDE:
            return "invalid_output:shape"
        row = row.tolist()
    elif type(row) is not list and type(row) is not tuple:
        return "invalid_output:row_type"
    if len(row) > MAX_SIDE:
        return "invalid_output:shape"
    out = bytearray()
    for v in row:
        t = type(v)
        if t is not int:
            if t not in _NP_INTS:
                return "invalid_output:cell_type"
            v = int(v)
        if not 0 <= v <= 9:
            return "invalid_output:value"
        out.append(v)
    return bytes(out)


def _from_array(a: np.ndarray) -> tuple[int, int, bytes] | str:
    if a.ndim != 2:
        return "invalid_output:shape"
    if a.dtype.kind not in "iu":
        return "invalid_output:dtype"
    h, w = a.shape
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        return "invalid_output:shape"
    if int(a.min()) < 0 or int(a.max()) > 9:
        return "invalid_output:value"
    return h, w, np.ascontiguousarray(a, dtype=np.uint8).tobytes()
