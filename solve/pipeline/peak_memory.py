"""Peak memory of this process for one task: GPU (torch allocator) and RSS (Linux VmHWM)."""

from __future__ import annotations

import resource


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:  # Linux: writing 5 resets VmHWM (peak RSS) of this process, so the peak is per task
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux or not permitted: the peak is then since the process started


def peak_memory() -> dict[str, float]:
    """{'peak_rss_mb': ..., 'peak_gpu_mb': ... (with CUDA)} since the last reset."""
    import torch

    out: dict[str, float] = {}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out["peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:  # not Linux: lifetime peak (kB on Linux, bytes on macOS; close enough for a log)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out
