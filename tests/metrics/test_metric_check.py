"""``make metric-check``: the degradations, the rank correlation and the scores on the synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import metric_check as mc
from midms.errors import UserError


def _spearman_by_hand(x: list[float], y: list[float]) -> float:
    """Spearman's rho without ties: Pearson's correlation of the ranks."""
    rx = np.argsort(np.argsort(x)).astype(float)
    ry = np.argsort(np.argsort(y)).astype(float)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


def test_structure_shift_translates_by_the_fraction_and_repeats_the_border():
    x = torch.rand(2, 3, 32, 32)
    shifted = mc.structure_shift(x, 1 / 8, {})  # 4 px right and down
    assert torch.equal(shifted[..., 4:, 4:], x[..., :28, :28])
    assert torch.equal(shifted[..., 4:, 0], x[..., :28, 0]) and torch.equal(shifted[..., 0, 4:], x[..., 0, :28])
    assert torch.equal(mc.structure_shift(x, 0.0, {}), x)


def test_each_degradation_leaves_level_zero_unchanged_and_grows_with_its_strength():
    pairs = mc.synthetic_pairs(4, 32)
    x = pairs["target"]
    for d in mc.DEGRADATIONS:
        assert torch.allclose(d.apply(x, d.strengths[0], pairs), x), d.name
        errors = [float((d.apply(x, s, pairs) - x).abs().mean()) for s in d.strengths]
        assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), (d.name, errors)


def test_the_style_error_keeps_the_labels_and_changes_the_style():
    pairs = mc.synthetic_pairs(4, 32)
    wrong, target = pairs["wrong_style"], pairs["target"]
    for k in range(4):
        labels = pairs["labels"][k]
        for c in labels.unique():
            region = labels == c
            # one class, one colour family: the wrong-style render differs from the target's colour in the region
            assert not torch.allclose(wrong[k][:, region].mean(1), target[k][:, region].mean(1), atol=1e-3)


def test_sensitivity_is_the_oriented_rank_correlation():
    levels = [0, 1, 2, 3, 4]
    psnr = [40.0, 30.0, 31.0, 20.0, 10.0]  # higher is better, one inversion
    swd = [1.0, 2.0, 3.0, 4.0, 5.0]  # lower is better, monotone
    flat = [7.0] * 5
    rows = [
        {"metric": m, "degradation": "blur", "level": lv, "strength": float(lv), "value": v}
        for m, values in (("psnr", psnr), ("swd", swd), ("flat", flat))
        for lv, v in zip(levels, values, strict=True)
    ]
    table = mc.sensitivity(pd.DataFrame(rows), {"psnr": "higher", "swd": "lower", "flat": "lower"})
    assert table.loc["psnr", "blur"] == pytest.approx(_spearman_by_hand(levels, [-v for v in psnr]))
    assert table.loc["psnr", "blur"] == pytest.approx(0.9)
    assert table.loc["swd", "blur"] == pytest.approx(1.0)
    assert np.isnan(table.loc["flat", "blur"])
    text = mc.markdown(table)
    assert "+0.90" in text and "+1.00" in text and "blind (constant)" in text


def test_scores_on_the_synthetic_ground_truth(tmp_path):
    pairs = mc.synthetic_pairs(6, 32)
    values, skipped, directions = mc.measure(pairs, ["psnr", "ssim", "fid"], "default", tmp_path / "w", tmp_path / "c")
    assert "fid" in skipped and "inception" in skipped["fid"].lower()  # no weights here: skipped with the reason
    assert directions == {"psnr": "higher", "ssim": "higher"}
    table = mc.sensitivity(values, directions)
    # PSNR and SSIM against the true translation see every degradation, each level worse than the last
    assert np.allclose(table.loc["psnr"].to_numpy(dtype=float), 1.0), table
    # at full strength the copy_exemplar degradation is the exemplar: PSNR as a plain numpy computation on the files
    full = values.query("metric == 'psnr' and degradation == 'copy_exemplar' and level == 4")["value"].item()
    ex = [np.asarray(Image.open(tmp_path / "w" / "exemplar" / f"{n}.png"), float) / 255 for n in pairs["id"]]
    gt = [np.asarray(Image.open(tmp_path / "w" / "target" / f"{n}.png"), float) / 255 for n in pairs["id"]]
    by_hand = np.mean([10 * np.log10(1 / np.mean((a - b) ** 2)) for a, b in zip(ex, gt, strict=True)])
    assert full == pytest.approx(by_hand, abs=1e-3)


def test_a_metrics_own_uncertainty_is_not_ranked_as_a_metric(tmp_path):
    pairs = mc.synthetic_pairs(4, 32)
    degradations = [d for d in mc.DEGRADATIONS if d.name == "blur"]
    values, _, directions = mc.measure(pairs, ["swd"], "default", tmp_path / "w", tmp_path / "c", degradations)
    assert "swd" in set(values["metric"]) and directions["swd"] == "lower"
    assert not values["metric"].str.endswith("_ci95").any()  # the bootstrap half-width is not a measure of images


def test_too_few_images_is_a_clear_error():
    with pytest.raises(UserError, match="at least 2"):
        mc.synthetic_pairs(1, 32)
