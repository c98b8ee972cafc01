"""``benchmarks/learning_curves.py``: the probe's steps, its measurements, and the copy_exemplar line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from e2e import MIDMS_TINY
from skimage.metrics import structural_similarity
from torch.utils.data import default_collate

from benchmarks import learning_curves
from midms.data.synthetic import SyntheticPairs


def test_psnr_is_the_per_image_mean_of_the_8_bit_convention():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.2)  # error 0.1 on [0, 1] images: 20 dB
    b[1] = 0.02  # error 0.01: 40 dB
    assert abs(learning_curves.psnr(a, b) - 30.0) < 1e-4


def test_ssim_is_the_per_image_mean_and_agrees_with_scikit_image():
    """The probe's SSIM against scikit-image's Gaussian SSIM (sigma 1.5, population covariances: Wang et al. 2004),
    an implementation independent of torchmetrics', on [0, 1] images mapped from [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    fake = (target + torch.randn(target.shape, generator=g)).clamp(-1, 1)
    fake[1] = target[1] + 0.05  # nearly the target: a different value per image
    unit = lambda x: ((x + 1) / 2).numpy()  # noqa: E731
    reference = [
        structural_similarity(
            unit(target[i]),
            unit(fake[i]),
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(2)
    ]
    assert reference[1] > reference[0] + 0.2
    assert abs(learning_curves.ssim(fake, target) - float(np.mean(reference))) < 3e-3


@pytest.mark.slow  # a MIDMs fit with a prior stage: the benchmark script, not the method (its tests are fast)
def test_a_short_midms_curve_is_measured_after_the_prior_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIDMS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "curve.csv"
    args = ["--steps", "4", "--every", "2", "--pairs", "4", "--out", str(out)]
    tiny = ["dataset.image_size=32", "dataset.sizes.train=8", "dataset.sizes.test=4", "dataset.datamodule.batch_size=2"]
    table = learning_curves.main([*args, *tiny, *MIDMS_TINY])
    assert list(table["step"]) == [0, 2, 4]
    # the phase of the last step taken; MIDMS_TINY: half warm-up, half end to end
    assert list(table["phase"]) == ["start", "warmup", "e2e"]
    assert table["matching_accuracy"].between(0, 1).all()
    pairs = default_collate([SyntheticPairs("test", 32, sizes={"test": 4})[i] for i in range(4)])
    copy_psnr = learning_curves.psnr(pairs["exemplar"], pairs["target"])
    assert (table["psnr_over_copy_exemplar"] - (table["psnr"] - copy_psnr)).abs().max() < 1e-9
    copy_ssim = learning_curves.ssim(pairs["exemplar"], pairs["target"])
    assert (table["ssim_over_copy_exemplar"] - (table["ssim"] - copy_ssim)).abs().max() < 1e-9
    assert table["ssim"].between(-1, 1).all()
    assert pd.read_csv(out)["step"].tolist() == [0, 2, 4]
    assert f"psnr {copy_psnr:.3f}" in capsys.readouterr().out
    assert (tmp_path / "cache" / "priors").is_dir()  # the prior stage ran (and cached) before step 0
