"""Peak resident memory of a benchmark process, measured so that nothing of its parent leaks in.

``getrusage(...).ru_maxrss`` is the wrong tool for a spawned worker: at ``exec`` Linux folds the peak of
the replaced memory map into the new process's ``ru_maxrss``, and with ``vfork`` (what ``subprocess`` uses)
that map is the parent's, so a worker started by a large process (a pytest session, ``make perf``) reports
the parent's peak. ``VmHWM`` in ``/proc/<pid>/status`` belongs to the current memory map only, and writing
``5`` to ``/proc/self/clear_refs`` resets it to the current RSS (Linux >= 4.0; see proc(5)).
"""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path

import torch


def _status_mib(field: str, pid: int | str = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` where there is no /proc, e.g. macOS, in bytes there)."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_peak_mib(device: torch.device) -> float:
    """The peak memory of ``device``: CUDA's ``max_memory_allocated``, or this process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def device_sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_second_call(fn, device: torch.device) -> float:
    """Seconds of ``fn()`` after one warm-up call, device synchronised."""
    fn()
    device_sync(device)
    start = time.perf_counter()
    fn()
    device_sync(device)
    return time.perf_counter() - start


def current_rss_mib() -> float:
    rss = _status_mib("VmRSS")
    return rss if rss is not None else peak_rss_mib()


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it (then peaks are since start)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_with_peak_rss(cmd: list[str], interval: float = 0.1, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd`` and sample its VmHWM until it exits: (completed process, peak RSS MiB of the child itself).

    VmHWM only grows, so the last sample holds the peak unless it came in the final ``interval`` before exit.
    """
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    peak = 0.0
    with subprocess.Popen(cmd, text=True, **kwargs) as proc:
        while True:
            peak = max(peak, _status_mib("VmHWM", proc.pid) or 0.0)
            try:  # reading the pipes as it goes: a child that fills one would block otherwise
                out, err = proc.communicate(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                continue
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak
