"""``benchmarks/perf_midms.py`` end to end at the tiny size: its measurements, its partial-results file and
the rows ``make perf`` builds from them."""

from __future__ import annotations

import json

import pytest

from benchmarks import perf, perf_midms


@pytest.mark.slow  # runs the perf script's subprocesses; make perf is the benchmark itself
def test_perf_midms_measures_loop_and_batched_and_correlation(tmp_path):
    out = tmp_path / "midms.json"
    argv = ["--size", "tiny", "--image-size", "32", "--schedule", "no_refine", "--batch", "2", "--corr-batch", "1", "2"]
    result = perf_midms.main([*argv, "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))  # the file holds every measurement
    (row,) = result["sampling"]
    (variant,) = row["variants"]
    assert row["batch"] == 2 and variant["precision"] == "fp32" and not variant["channels_last"]
    for m in (row["naive_loop"], variant):
        assert m["seconds"] > 0 and abs(m["images_per_s"] - 2 / m["seconds"]) < 1e-9
    one, two = result["correlation"]
    # the dense 4096×4096 float32 correlation is 64 MiB an image (its softmax another 64): linear in batch; the
    # chunked path holds one 1024×4096 block at a time whatever the batch
    assert one["dense"]["peak_mib"] > 120 and two["dense"]["peak_mib"] > 1.8 * one["dense"]["peak_mib"]
    assert one["chunked"]["peak_mib"] < one["dense"]["peak_mib"] / 2
    assert two["chunked"]["peak_mib"] < one["chunked"]["peak_mib"] + 16
    rows = perf._midms(result)
    speed = next(r for r in rows if r["measure"].startswith("sampling img/s"))
    assert speed["ratio"] == variant["images_per_s"] / row["naive_loop"]["images_per_s"]
    assert "batch 2, fp32" in speed["measure"]
