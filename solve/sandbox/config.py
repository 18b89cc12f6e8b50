"""Typed settings for the solve stage (the program sandbox first; other sections follow below it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SandboxConfig(BaseModel, extra="forbid"):
    """How generated programs are run: worker pool size and the limits each program runs under."""

    workers: int = Field(0, ge=0, description="Worker processes that run programs in parallel; 0 = one per CPU core.")
    timeout_s: float = Field(
        2.0,
        gt=0,
        description=(
            "Wall-clock seconds per grid: each call of transform() (the first also covers compiling and running the "
            "program's top level) must return within this, else the program is killed and that grid and the rest "
            "are recorded as 'timeout'."
        ),
    )
    memory_mb: int = Field(
        1024,
        ge=256,
        description="Address-space limit (RLIMIT_AS) of the process running one program, in MiB, numpy included.",
    )
    cpu_s: int | None = Field(
        None,
        ge=1,
        description=(
            "CPU-seconds limit (RLIMIT_CPU) for one program over all its grids; None = ceil(timeout_s x grids) + 1. "
            "A backstop for the wall-clock timeout."
        ),
    )
    max_output_chars: int = Field(
        2000, ge=0, description="Characters of a program's captured stdout/stderr kept; the rest is dropped."
    )
    seccomp: bool = Field(
        True,
        description=(
            "Install a seccomp filter in each program process (Linux with libseccomp). When unavailable the "
            "sandbox warns once and runs with rlimits only."
        ),
    )
