"""``benchmarks/perf_quickstart.py``: the quickstart from an empty cache, then cached; stages and scores read back."""

from __future__ import annotations

import pytest

from benchmarks import perf, perf_quickstart


@pytest.mark.slow  # two runs of run.py; make perf runs the quickstart itself
def test_both_runs_are_timed_and_their_stages_and_scores_read_from_the_job_record():
    overrides = ["model=copy_exemplar", "logger=none", "dataset.sizes.test=16", "metrics=pixel",
                 "+metrics.matching_accuracy._target_=midms.metrics.matching.MatchingAccuracy"]  # fmt: skip
    result = perf_quickstart.main(overrides)
    for run in ("empty_cache", "cached"):
        one = result[run]
        assert one["wall_s"] > one["times"]["total"] > 0  # the job's own clock starts after the interpreter's
        assert {"startup", "setup", "translation", "scoring", "total"} <= set(one["times"])
        assert 5 < one["scores"]["psnr"] < 40 and 0 < one["scores"]["matching_accuracy"] <= 1
    assert result["empty_cache"]["scores"] == result["cached"]["scores"]  # the same job twice
    rows = perf._quickstart(result)
    wall = [r for r in rows if r["measure"].startswith("wall s")]
    assert [r["baseline"] for r in wall] == [60.0, 30.0]  # the budgets: 60 s from nothing, 30 s cached
    psnr = [r for r in rows if r["measure"].startswith("psnr")]
    assert [r["baseline"] for r in psnr] == [15.70, 15.70]
