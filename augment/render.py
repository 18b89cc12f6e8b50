"""Grids for people: colored cells in the terminal (rich), plain digits elsewhere."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.columns import Columns
from rich.panel import Panel
from rich.text import Text

# The ARC palette, as used by the official viewer.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")


def grid_text(grid: np.ndarray) -> Text:
    """Each cell as its digit on its ARC color (rich drops the color when the output is not a terminal)."""
    text = Text()
    for r, row in enumerate(grid):
        if r:
            text.append("\n")
        for v in row:
            fg = "white" if int(v) in (0, 1, 9) else "black"
            text.append(f"{int(v)} ", style=f"{fg} on {PALETTE[int(v)]}")
    return text


def grids_row(grids: Sequence[tuple[str, np.ndarray]]) -> Columns:
    """Titled grids side by side."""
    return Columns([Panel(grid_text(g), title=title, expand=False) for title, g in grids])
