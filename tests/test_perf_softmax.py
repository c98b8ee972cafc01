"""``benchmarks/perf_softmax.py``: both softmaxes timed on the same logits, equal where representable."""

from __future__ import annotations

import pytest

from benchmarks import perf, perf_softmax


def test_both_softmaxes_are_timed_on_the_same_logits_and_reported_against_torch(monkeypatch):
    monkeypatch.setattr(perf_softmax, "SHAPES", {"small": (2, 16, 64)})
    result = perf_softmax.main(["--repeats", "2"])
    assert result["temperature"] == 0.005  # MIDMs' (soft_warp(..., alpha=0.005) in cvlab-kaist/MIDMs)
    (row,) = result["rows"]
    assert row["equal_where_representable"] is True
    assert row["speedup"] == pytest.approx(row["softmax_s"] / row["sharp_s"])
    (table_row,) = perf._softmax(result)
    assert table_row["ratio"] == pytest.approx(row["sharp_s"] / row["softmax_s"])
