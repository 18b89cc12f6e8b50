"""Grids as prompt text, and a strict parser for model output.

Format: a shape header `HxW` on its own line, then one line per row with one digit per cell:

    3x2
    01
    20
    77

One digit per cell keeps the token count equal to the cell count for tokenizers that split digits
(SmolLM2, Qwen, Llama 3). The parser returns a grid or a reason; it never guesses a repair.
"""

from __future__ import annotations

import re

import numpy as np

from augment.tasks import MAX_SIDE

_HEADER = re.compile(r"^(\d+)x(\d+)$", re.ASCII)  # ASCII digits only, like the rows


class GridParseError(ValueError):
    """Model text that is not a well-formed grid; the message says why."""


def grid_to_text(grid: np.ndarray) -> str:
    h, w = grid.shape
    rows = ("".join(str(int(v)) for v in row) for row in grid)
    return f"{h}x{w}\n" + "\n".join(rows)


def text_to_grid(text: str) -> np.ndarray:
    """Parse `grid_to_text` output exactly; surrounding blank lines are allowed, nothing else is."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if not lines or not lines[0]:
        raise GridParseError("empty text")
    m = _HEADER.match(lines[0])
    if not m:
        raise GridParseError(f"first line {lines[0][:40]!r} is not a shape header like '3x4'")
    h, w = int(m.group(1)), int(m.group(2))
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise GridParseError(f"shape {h}x{w} is outside 1x1..{MAX_SIDE}x{MAX_SIDE}")
    rows = lines[1:]
    if len(rows) != h:
        raise GridParseError(f"header says {h} rows, found {len(rows)}")
    for r, row in enumerate(rows):
        if len(row) != w:
            raise GridParseError(f"row {r} has {len(row)} cells, header says {w}")
        if not row.isdigit() or not row.isascii():
            raise GridParseError(f"row {r} has a character that is not a digit 0-9: {row[:40]!r}")
    return np.array([[int(c) for c in row] for row in rows], dtype=np.uint8)


def parse_prefix_grid(text: str) -> np.ndarray:
    """Parse the grid at the start of generated text, ignoring whatever the model wrote after it.

    Generation rarely stops exactly at the grid's end; the header says how many rows to take.
    """
    lines = text.lstrip().splitlines()
    if not lines:
        raise GridParseError("empty text")
    m = _HEADER.match(lines[0].strip())
    if not m:
        raise GridParseError(f"first line {lines[0][:40]!r} is not a shape header like '3x4'")
    return text_to_grid("\n".join(lines[: 1 + int(m.group(1))]))
