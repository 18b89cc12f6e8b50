"""The sandbox's wire format: length-prefixed frames and grids as "HxW:digits" text.

Shared by the parent (`solve.sandbox.pool`), the worker (`solve.sandbox.worker`) and the program child
(`solve.sandbox.child`), so none of those imports another. Framing on every pipe: 4-byte big-endian
length, then the payload. Grids travel between parent and worker as "HxW:digits" (row-major), e.g.
"2x2:0120" (not the prompt text of `augment.gridtext`, which the model reads).
"""

from __future__ import annotations

import os
import select
import struct
import time

MAX_SIDE = 30
SEED = 0  # random and np.random state every program starts from
_LEN = struct.Struct(">I")
_DIGITS = bytes(range(48, 58))
_TO_DIGITS = bytes.maketrans(bytes(range(10)), _DIGITS)
_FROM_DIGITS = bytes.maketrans(_DIGITS, bytes(range(10)))


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def cells_to_wire(h: int, w: int, cells: bytes) -> str:
    return f"{h}x{w}:" + cells.translate(_TO_DIGITS).decode("ascii")


def wire_to_cells(text: str) -> tuple[int, int, bytes]:
    """Parse "HxW:digits"; raises ValueError on anything malformed."""
    head, _, digits = text.partition(":")
    h_s, _, w_s = head.partition("x")
    h, w = int(h_s), int(w_s)
    raw = digits.encode("ascii")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or len(raw) != h * w or raw.strip(_DIGITS):
        raise ValueError(f"malformed grid text {text[:40]!r}")
    return h, w, raw.translate(_FROM_DIGITS)


class FrameReader:
    """Reads length-prefixed frames from a pipe with deadlines, a cap per frame and an optional cap in total.

    The per-frame cap bounds memory (the buffer never holds more than one frame plus one read); the
    total cap is for a reader with a bounded life (one program's child), never for a long-lived worker,
    whose healthy traffic grows without bound."""

    def __init__(self, fd: int, max_frame: int, max_total: int | None = None):
        self.fd, self.max_frame, self.max_total, self.total = fd, max_frame, max_total, 0
        self.buf = bytearray()
        self.eof = False

    def next(self, deadline: float) -> bytes | None:
        """The next frame; None at EOF. Raises TimeoutError past `deadline`, ValueError past a byte cap."""
        while True:
            if len(self.buf) >= 4:
                (n,) = _LEN.unpack_from(self.buf)
                if n > self.max_frame:
                    raise ValueError(f"frame of {n} bytes exceeds {self.max_frame}")
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return payload
            if self.eof:
                return None
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        remaining = None if deadline == float("inf") else deadline - time.monotonic()
        if remaining is not None and (remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]):
            raise TimeoutError
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
            return
        self.total += len(chunk)
        if self.max_total is not None and self.total > self.max_total:
            raise ValueError(f"more than {self.max_total} bytes in total")
        self.buf += chunk


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
