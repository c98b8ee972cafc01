"""``benchmarks/perf_eval_ranks.py``: translation with one process and with two gloo ranks, the same scores."""

from __future__ import annotations

import pytest

from benchmarks import perf, perf_eval_ranks


@pytest.mark.slow  # spawns the ranks three times; make perf is the benchmark itself
def test_two_ranks_translate_their_shares_and_score_what_one_process_scores():
    result = perf_eval_ranks.main(["--images", "16", "--image-size", "32"])
    assert result["ranks"] == 2 and result["images"] == 16
    assert result["same_scores"] and result["same_samples"]
    assert result["one_process_s"] > 0 and result["sharded_s"] > 0
    assert result["speedup"] == pytest.approx(result["one_process_s"] / result["sharded_s"])
    rows = perf._eval_ranks(result)
    assert [r["measure"] for r in rows] == ["translation s, 16 pairs, sharded", "speed-up over one process"]
    assert rows[1]["ratio"] == pytest.approx(result["speedup"])
