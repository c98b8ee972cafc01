"""The distribution metrics' uncertainty: bootstrap over generated images, KID's subset std, and the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from cleanfid import fid as cleanfid_fid

from midms.metrics import uncertainty
from midms.metrics.fid import FID, KID, frechet_distance, frechet_distance_bootstrap, kid_subsets
from midms.metrics.swd import compute_swd, random_directions, swd_bootstrap, swd_from_descriptors
from midms.reporting.tables import format_summary, summary_table
from tests.metrics.test_fid import make_ctx, metric


def test_the_half_width_is_the_normal_quantile_times_the_bootstrap_standard_error():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    assert uncertainty.half_width(values) == pytest.approx(scipy.stats.norm.ppf(0.975) * np.std(values, ddof=1))
    with pytest.raises(ValueError):
        uncertainty.half_width(np.array([1.0]))
    draws = uncertainty.resample_indices(5, 3, seed=0)
    assert draws.shape == (3, 5) and draws.min() >= 0 and draws.max() < 5
    assert np.array_equal(draws, uncertainty.resample_indices(5, 3, seed=0))


@pytest.mark.parametrize(("n", "d"), [(12, 20), (40, 6)])  # fewer images than features (Gram path), and more
def test_each_bootstrap_fid_is_the_fid_of_its_resample(n, d):
    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(n, d)), rng.normal(size=(3 * d, d)) + 0.3
    mu, sigma = real.mean(0), np.cov(real, rowvar=False)
    boot = frechet_distance_bootstrap(fake, mu, sigma, resamples=5, seed=1)
    for value, index in zip(boot, uncertainty.resample_indices(n, 5, seed=1), strict=True):
        x = fake[index]
        assert value == pytest.approx(frechet_distance(x.mean(0), np.cov(x, rowvar=False), mu, sigma), rel=1e-6)
    assert np.ptp(boot) > 0


def test_kid_subsets_are_cleanfids_draws_and_each_an_unbiased_mmd():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(9, 4)), rng.normal(size=(7, 4)) + 0.2
    values = kid_subsets(f1, f2, num_subsets=4, max_subset_size=5, seed=3)
    np.random.seed(3)
    assert values.mean() == pytest.approx(cleanfid_fid.kernel_distance(f1, f2, num_subsets=4, max_subset_size=5))
    # the first subset by hand: unbiased MMD² with the kernel (x·y/d + 1)³ (Bińkowski et al., ICLR 2018, eq. 3)
    np.random.seed(3)
    x, y = f2[np.random.choice(7, 5, replace=False)], f1[np.random.choice(9, 5, replace=False)]

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    m = 5
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) * 2 / m**2
    assert values[0] == pytest.approx(within - across, rel=1e-10)
    assert np.ptp(values) > 0


def test_each_bootstrap_swd_is_the_swd_of_its_resample():
    g = torch.Generator().manual_seed(0)
    per_image, n = 4, 6
    real = [torch.randn(n * per_image, 12, generator=g) for _ in range(2)]
    fake = [torch.randn(n * per_image, 12, generator=g) * 1.5 for _ in range(2)]
    dirs = [random_directions(12, 8, 2, g) for _ in range(2)]
    boot = swd_bootstrap(real, fake, dirs, per_image, resamples=3, seed=5)
    for value, images in zip(boot, uncertainty.resample_indices(n, 3, seed=5), strict=True):
        rows = torch.cat([torch.arange(i * per_image, (i + 1) * per_image) for i in images])
        want = swd_from_descriptors(real, [f[rows] for f in fake], dirs, [32, 16])["swd"]
        assert value == pytest.approx(want, rel=1e-5)
    # more real rows than generated ones: each resample compares with a subset of the real rows
    more_real = [torch.cat([r, r[:per_image] + 0.5]) for r in real]
    boot = swd_bootstrap(
        more_real, fake, dirs, per_image, resamples=2, seed=5, generator=torch.Generator().manual_seed(3)
    )
    g_want = torch.Generator().manual_seed(3)
    for value, images in zip(boot, uncertainty.resample_indices(n, 2, seed=5), strict=True):
        rows = torch.cat([torch.arange(i * per_image, (i + 1) * per_image) for i in images])
        resampled = [f[rows] for f in fake]
        want = sum(
            swd_from_descriptors([r], [f], [d], [0], g_want)["swd"]
            for r, f, d in zip(more_real, resampled, dirs, strict=True)
        )
        assert value == pytest.approx(want / 2, rel=1e-5)
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=g, dtype=torch.uint8)
    plain = compute_swd([images], 8, [images // 2], 8, 32, progress=False)
    with_ci = compute_swd([images], 8, [images // 2], 8, 32, progress=False, bootstrap=4)
    assert with_ci.pop("swd_ci95") > 0 and with_ci == plain  # the value itself does not change


def test_fid_reports_its_interval_and_its_stable_minimum_and_kid_its_subset_std(tmp_path):
    from tests.metrics.test_fid import N_FAKE, N_REAL, write_images

    fake = write_images(tmp_path / "samples", N_FAKE, seed=1, offset=40)
    write_images(tmp_path / "reference" / "image", N_REAL, seed=2)
    ctx = make_ctx(tmp_path, fake, seed=2)
    fid, kid = metric(FID, bootstrap=6), metric(KID)
    fid.setup(ctx)
    kid.setup(ctx)
    values = fid.compute(ctx)
    assert values["fid_ci95"] > 0 and fid.protocol["bootstrap"]["resamples"] == 6
    assert fid.protocol["stable_min_images"] == 2048  # pytorch-fid's README: at least 2048 samples
    assert "kid_subset_std" in kid.compute(ctx)
    assert "fid_ci95" not in metric(FID, bootstrap=0).compute(ctx)


def test_the_tables_read_the_uncertainty_keys_the_metrics_write():
    from midms.reporting import tables

    assert tables.UNCERTAINTY_SUFFIXES == uncertainty.UNCERTAINTY_SUFFIXES


def _jobs(rows):
    frame = pd.DataFrame(rows)
    frame["status"], frame["ablation"], frame["dataset"] = "completed", "none", "synthetic"
    return frame


def test_tables_show_the_interval_mark_results_within_noise_and_too_few_images():
    few = {"metric_info.fid.stable_min_images": 2048, "metric_info.fid.num_images": 300}  # as the record flattens
    fid = {"fid": {"metric": "fid", "direction": "lower", "headline": True, "stable_min_images": 2048}}
    jobs = _jobs(
        [
            {"model": "a", "seed": 0, "fid": 10.0, "fid_ci95": 1.0, **few},
            {"model": "b", "seed": 0, "fid": 11.5, "fid_ci95": 1.0, **few},  # 1.5 apart, intervals ±1: overlap
            {"model": "c", "seed": 0, "fid": 20.0, "fid_ci95": 1.0, **few},
        ]
    )
    text = format_summary(summary_table(jobs, fid))
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in text.splitlines()[2:]}
    assert rows["a"] == "**10.00 [± 1.00]** †"  # one precision per column: 4 significant digits of 20
    assert rows["b"] == "≈ 11.50 [± 1.00] †"
    assert rows["c"] == "20.00 [± 1.00] †"
    enough = jobs.assign(**{"metric_info.fid.num_images": 4096})
    assert "†" not in format_summary(summary_table(enough, fid))
