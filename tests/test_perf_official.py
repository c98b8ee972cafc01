"""``benchmarks/perf_official.py`` without the official code (which is never shipped): its arguments, its check of
the checkout, and the rows ``make perf`` prints from its result."""

from __future__ import annotations

import pytest

from benchmarks import perf, perf_official


def test_it_needs_a_checkout_and_names_what_a_wrong_folder_lacks(tmp_path, capsys):
    with pytest.raises(SystemExit):
        perf_official.main([])
    assert "--cocosnet and/or --midms" in capsys.readouterr().err
    wrong = perf_official.official_cocosnet(tmp_path, tmp_path)
    with pytest.raises(SystemExit, match="not a checkout of microsoft/CoCosNet: models/pix2pix_model.py"):
        wrong.__enter__()


def test_make_perf_reports_official_over_ours_with_each_target():
    result = {
        "threads": 2,
        "cocosnet": {"resolution": 256, "batch": 1, "max_abs_diff": 0.0,
                     "inference": {"official_s": 4.5, "ours_s": 3.0},
                     "training step": {"official_s": 20.0, "ours_s": 25.0}},
        "midms": {"resolution": 256, "image_diff": {"max": 0.0}, "inference": {"official_s": 50.0, "ours_s": 25.0}},
    }  # fmt: skip
    rows = {row["measure"]: row for row in perf._official(result)}
    inference = rows["CoCosNet inference speed-up, 256 px, batch 1, 2 threads"]
    assert inference["value"] == pytest.approx(1.5) and "target >= 1.5" in inference["note"]
    step = rows["CoCosNet training step speed-up, 256 px, batch 1, 2 threads"]
    assert step["value"] == pytest.approx(0.8) and "target >= 1.2" in step["note"]
    midms = rows["MIDMs inference speed-up, 256 px, 2 threads"]
    assert midms["value"] == pytest.approx(2.0) and "target >= 3" in midms["note"]
    lines = perf_official.report_rows(result["cocosnet"])
    assert "1.50x (target >= 1.5x: met)" in lines[1] and "0.80x (target >= 1.2x: not met)" in lines[2]
