"""``benchmarks/memory.py``: a worker's peak memory is its own, whatever its parent held."""

from __future__ import annotations

import sys

import pytest

from benchmarks import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CHILD = "import time; b = b'x' * (80 * 2**20); time.sleep(0.5)"  # 80 MiB touched, held half a second


def test_child_peak_excludes_a_large_parent():
    ballast = b"x" * (400 * 2**20)  # the parent now peaks 400 MiB higher (pages written, so resident)
    proc, peak = memory.run_with_peak_rss([sys.executable, "-c", CHILD])
    assert proc.returncode == 0 and len(ballast) > 0
    # the child's own peak: its 80 MiB plus the interpreter; ru_maxrss of a vforked child would carry the 400
    assert 80 < peak < 80 + 150, peak


def test_reset_moves_the_peak_down_to_the_current_rss():
    spike = b"x" * (200 * 2**20)
    del spike
    assert memory.peak_rss_mib() >= memory.current_rss_mib() + 150
    if not memory.reset_peak_rss():
        pytest.skip("this kernel does not allow resetting VmHWM")
    assert memory.peak_rss_mib() < memory.current_rss_mib() + 20
