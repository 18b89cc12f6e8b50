"""Third-party noise (warnings, library loggers, library progress bars) goes to a log file, not the terminal.

Our own lines stay readable: DeepSpeed's accelerator warning, transformers' FutureWarnings and its
weight-loading progress bars are written to a log file (the run directory's `third_party.log` for
commands that have one, else the cache's `logs/arc-ttt.log`); `arc-ttt -v ...` also shows them.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

LOG_NAME = "third_party.log"
_LOGGERS = ("transformers", "torch", "DeepSpeed", "deepspeed", "accelerate", "peft", "py.warnings", "matplotlib", "urllib3")
_state: dict = {"handler": None, "verbose": False}


def default_log_path() -> Path:
    cache = Path(os.environ.get("ARC_TTT_CACHE", Path.home() / ".cache" / "arc-ttt"))
    return cache / "logs" / "arc-ttt.log"


def route_noise(verbose: bool, log_path: Path | None = None) -> None:
    """Send third-party warnings and log records to `log_path` (and the terminal too when verbose)."""
    _state["verbose"] = verbose
    # Before anything imports deepspeed: naming the CPU accelerator avoids its "Setting accelerator to CPU"
    # warning; a machine with a GPU sets nothing here and DeepSpeed detects it as before.
    if not _has_cuda_device():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if verbose:
        logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("default")  # each distinct warning once
    warnings.showwarning = _show_warning
    redirect_noise(log_path or default_log_path())


_ROOT = Path(__file__).resolve().parents[2]  # the directory holding our packages
_OURS = tuple(str(_ROOT / pkg) for pkg in ("augment", "ttt", "solve"))
_terminal_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 (warnings' signature)
    """Our own warnings (e.g. a sandbox without full isolation) stay on the terminal; others go to the log."""
    if str(filename).startswith(_OURS) or _state["verbose"]:
        _terminal_warning(message, category, filename, lineno, file, line)
    if not str(filename).startswith(_OURS):
        logging.getLogger("py.warnings").warning(warnings.formatwarning(message, category, filename, lineno, line).rstrip())


def redirect_noise(log_path: Path) -> None:
    """(Re)point the log file, e.g. into a run directory once its path is known."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    old = _state["handler"]
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if old is not None:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = _state["verbose"]  # the root logger's stderr handler shows it with -v
    if old is not None:
        old.close()
    _state["handler"] = handler
    _quiet_transformers()


def _quiet_transformers() -> None:
    """transformers keeps its own stderr handler and tqdm bars; both go unless -v (it is imported anyway)."""
    if _state["verbose"]:
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # transformers is a dependency; without it there is nothing to quiet
        return
    hf_logging.disable_default_handler()
    hf_logging.disable_progress_bar()


def _has_cuda_device() -> bool:
    """Whether an NVIDIA device node exists, without importing torch (the CLI stays fast to start)."""
    return Path("/dev/nvidiactl").exists()
