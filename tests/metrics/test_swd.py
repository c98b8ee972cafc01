"""SWD: the torch implementation against the NumPy/SciPy reference, and the protocol's properties."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from PIL import Image

from midms.errors import UserError
from midms.metrics import swd
from midms.metrics.base import EvalContext
from midms.testing import swd_reference as ref


def textures(n: int, size: int, seed: int, low: float = 0.0, high: float = 255.0) -> torch.Tensor:
    """uint8 n×3×size×size images from one stationary distribution: smooth colour blobs plus fine grain."""
    g = torch.Generator().manual_seed(seed)
    blobs = torch.rand(n, 3, size // 4, size // 4, generator=g)
    smooth = F.interpolate(blobs, size=(size, size), mode="bicubic", align_corners=False)
    x = 0.6 * smooth + 0.4 * torch.rand(n, 3, size, size, generator=g)
    return (low + (high - low) * x.clamp(0, 1)).round().to(torch.uint8)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    blurred = scipy.ndimage.gaussian_filter(images.numpy().astype(np.float32), (0, 0, sigma, sigma))
    return torch.from_numpy(blurred.round().clip(0, 255).astype(np.uint8))


def run_swd(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, chunk: int = 16) -> dict[str, float]:
    def chunks(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[i : i + chunk] for i in range(0, len(x), chunk)]

    return swd.compute_swd(chunks(real), len(real), chunks(fake), len(fake), real.shape[-1], seed=seed, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # tensors here are tiny: intra-op threads cost more than they give, badly so on a busy 2-core runner
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sets() -> dict[str, torch.Tensor]:
    a, b = textures(32, 64, seed=1), textures(32, 64, seed=2)
    return {"a": a, "b": b, "b_blur": gaussian_blur(b, 3.0)}


@pytest.fixture(scope="module")
def scores(sets: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """SWD (seed 0) of set a against an independent set b of the same distribution, and against b blurred."""
    return {"same": run_swd(sets["a"], sets["b"]), "blurred": run_swd(sets["a"], sets["b_blur"])}


# ---------------------------------------------------------------------------------------------- pyramid


def test_torch_reflect_is_scipy_mirror() -> None:
    x = np.arange(6.0)
    kernel = np.array([1.0, 0, 0, 0, 0])  # picks the sample 2 to the right: exposes the padding
    torch_pad = F.pad(torch.tensor(x)[None, None], (2, 2), mode="reflect")[0, 0].numpy()
    mirror = scipy.ndimage.convolve(x, kernel, mode="mirror")
    assert np.array_equal(torch_pad[4:], mirror)  # 2 3 4 5 4 3: the edge sample is not repeated
    assert not np.array_equal(torch_pad[4:], scipy.ndimage.convolve(x, kernel, mode="reflect"))


def test_binomial_kernel() -> None:
    k = swd.binomial_kernel(torch.float64).numpy()
    assert k.shape == (5, 5) and k.sum() == pytest.approx(1.0)
    assert np.allclose(k * 256, np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]))


@pytest.mark.parametrize("size", [32, 18])  # 18: up-sampling an odd-sized level
def test_down_up_match_scipy(size: int) -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, size, size)).astype(np.float32)
    down = swd.pyramid_down(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(down, ref.pyramid_down(x), rtol=0, atol=1e-3)
    up = swd.pyramid_up(torch.from_numpy(down)).numpy()
    assert up.shape == x.shape
    np.testing.assert_allclose(up, ref.pyramid_up(down), rtol=0, atol=1e-3)


def test_laplacian_pyramid_matches_scipy() -> None:
    x = textures(3, 64, seed=3)
    levels = swd.laplacian_pyramid(x.float(), 3)
    expected = ref.laplacian_pyramid(x.numpy(), 3)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]  # finest first, low-pass residual last
    for got, want in zip(levels, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-3)
    assert abs(float(levels[0].mean())) < 1.0 and float(levels[-1].mean()) > 50  # band-pass vs low-pass


def test_pyramid_is_invertible() -> None:
    x = textures(2, 64, seed=4).double()
    levels = swd.laplacian_pyramid(x, 4)
    np.testing.assert_allclose(swd.reconstruct_laplacian_pyramid(levels).numpy(), x.numpy(), rtol=0, atol=1e-9)


def test_pyramid_resolutions() -> None:
    assert swd.pyramid_resolutions(256) == [256, 128, 64, 32, 16]
    assert swd.pyramid_resolutions(64, min_resolution=32) == [64, 32]


# ---------------------------------------------------------------------------------------------- descriptors


def test_patch_descriptors_match_loop() -> None:
    level = torch.randn(2, 3, 16, 16)
    positions = swd.sample_patch_positions(2, 5, 16, 7, torch.Generator().manual_seed(0))
    assert int(positions.min()) >= 0 and int(positions.max()) <= 16 - 7
    got = swd.patch_descriptors(level, positions, 7)
    assert got.shape == (10, 147)
    np.testing.assert_array_equal(got.numpy(), ref.patch_descriptors(level.numpy(), positions.numpy(), 7))


def test_normalize_descriptors_per_channel() -> None:
    desc = torch.randn(500, 3, 49) * torch.tensor([1.0, 5.0, 20.0])[:, None] + torch.tensor([3.0, -2.0, 100.0])[:, None]
    out = swd.normalize_descriptors(desc.reshape(500, 147).clone()).view(500, 3, 49)
    np.testing.assert_allclose(out.mean(dim=(0, 2)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(dim=(0, 2), correction=0).numpy(), 1, atol=1e-5)
    want = ref.normalize_descriptors(desc.reshape(500, -1).numpy())
    np.testing.assert_allclose(out.reshape(500, -1).numpy(), want, atol=1e-5)


def test_random_directions_are_unit() -> None:
    dirs = swd.random_directions(147, 128, 4, torch.Generator().manual_seed(0))
    assert dirs.shape == (4, 147, 128)
    np.testing.assert_allclose(dirs.norm(dim=1).numpy(), 1, atol=1e-5)


def test_swd_matches_numpy_reference_given_same_randomness(sets: dict[str, torch.Tensor]) -> None:
    real, fake = sets["a"][:12], sets["b_blur"][:12]
    resolutions = swd.pyramid_resolutions(64)
    g = torch.Generator().manual_seed(7)
    real_pos = [swd.sample_patch_positions(12, 128, r, 7, g) for r in resolutions]
    fake_pos = [swd.sample_patch_positions(12, 128, r, 7, g) for r in resolutions]
    dirs = [swd.random_directions(147, 128, 4, g) for _ in resolutions]
    real_desc = swd.collect_descriptors([real[:5], real[5:]], real_pos, 7)
    fake_desc = swd.collect_descriptors([fake], fake_pos, 7)
    got = swd.swd_from_descriptors(real_desc, fake_desc, dirs, resolutions)
    want = ref.swd(
        real.numpy(),
        fake.numpy(),
        real_positions=[p.numpy() for p in real_pos],
        fake_positions=[p.numpy() for p in fake_pos],
        direction_sets=[d.numpy() for d in dirs],
    )
    assert set(got) == set(want) == {"swd", "swd_64", "swd_32", "swd_16"}
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-4), key


def test_sliced_wasserstein_simple_cases() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 4, generator=g)
    dirs = swd.random_directions(4, 16, 2, g)
    assert swd.sliced_wasserstein(a, a[torch.randperm(1000, generator=g)], dirs) == pytest.approx(0.0, abs=1e-6)
    # a shift by t along a unit vector moves every projection by t·cos(angle): distance is t·E|cos|
    shifted = a + torch.tensor([3.0, 0, 0, 0])
    expected = 3.0 * dirs[:, 0, :].abs().mean().item()
    assert swd.sliced_wasserstein(a, shifted, dirs) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------------------------------------- protocol


def test_blur_scores_far_worse_than_same_distribution(scores: dict[str, dict[str, float]]) -> None:
    same, blurred = scores["same"], scores["blurred"]
    # 32 images give 4096 patches a level, whose sampling noise alone is ~25 (×1e3): "same" sits near that floor
    assert blurred["swd"] > 2 * same["swd"]
    assert all(blurred[k] > same[k] for k in same)
    assert blurred["swd_64"] > 3 * same["swd_64"]  # the blur removes the finest band most


def test_global_colour_shift_barely_moves_swd(scores: dict[str, dict[str, float]]) -> None:
    # values kept inside [40, 200] so that the shift does not clip: each set is normalised by its own stats
    real, fake = textures(16, 64, seed=5, low=40, high=200), textures(16, 64, seed=6, low=40, high=200)
    shifted = (fake.int() + torch.tensor([40, -30, 25])[:, None, None]).to(torch.uint8)
    base, moved = run_swd(real, fake), run_swd(real, shifted)
    for key in base:
        assert moved[key] == pytest.approx(base[key], rel=1e-3), key
    assert abs(moved["swd"] - base["swd"]) < 0.01 * (scores["blurred"]["swd"] - scores["same"]["swd"])


def test_seeded_reproducible_and_seed_dependent(
    sets: dict[str, torch.Tensor], scores: dict[str, dict[str, float]]
) -> None:
    assert run_swd(sets["a"], sets["b"], seed=0) == scores["same"]
    assert run_swd(sets["a"], sets["b"], seed=0, chunk=5) == pytest.approx(scores["same"], rel=1e-6)  # chunk-free
    other = run_swd(sets["a"], sets["b"], seed=4)
    assert all(other[k] != scores["same"][k] for k in other)


def test_real_and_fake_patches_drawn_independently(
    sets: dict[str, torch.Tensor], scores: dict[str, dict[str, float]]
) -> None:
    self_swd = run_swd(sets["a"], sets["a"])
    assert self_swd["swd"] > 0  # same images, different patch positions
    assert self_swd["swd"] < scores["same"]["swd"] < scores["blurred"]["swd"]


def test_threaded_cpu_path_matches(sets: dict[str, torch.Tensor], scores: dict[str, dict[str, float]]) -> None:
    torch.set_num_threads(3)  # image groups and sorts over 3 threads (back to the module's 1 below)
    try:
        threaded = run_swd(sets["a"], sets["b"])
        assert torch.get_num_threads() == 3  # restored after the single-threaded image-group phase
    finally:
        torch.set_num_threads(1)
    assert threaded == pytest.approx(scores["same"], rel=1e-5)


def test_unequal_set_sizes(sets: dict[str, torch.Tensor]) -> None:
    values = run_swd(sets["a"][:20], sets["b"][:12])
    assert np.isfinite(list(values.values())).all() and values["swd"] > 0


# ---------------------------------------------------------------------------------------------- metric


def write_pngs(folder: Path, images: torch.Tensor, prefix: str) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{prefix}{i:03d}.png")


def test_metric_compute_on_folders(tmp_path: Path, sets: dict[str, torch.Tensor]) -> None:
    write_pngs(tmp_path / "samples", sets["b"][:10], "gen_")  # names differ from the real side on purpose
    write_pngs(tmp_path / "ref" / "image", sets["a"][:10], "real_")
    ctx = EvalContext(tmp_path / "samples", tmp_path / "ref", tmp_path / "cache", "synthetic-test-64", 64, seed=1)
    metric = swd.SWD(chunk_size=4)
    assert metric.higher_is_better is False and metric.update(None) is None  # type: ignore[arg-type]
    values = metric.compute(ctx)
    assert set(values) == {"swd", "swd_64", "swd_32", "swd_16"}
    assert values["swd"] == pytest.approx(np.mean([values[f"swd_{r}"] for r in (64, 32, 16)]))
    assert swd.SWD(chunk_size=7).compute(ctx) == pytest.approx(values)  # seed from ctx, chunking-free
    other = swd.SWD(name="swd_exemplar", min_resolution=32, seed=2).compute(ctx)
    assert set(other) == {"swd_exemplar", "swd_exemplar_64", "swd_exemplar_32"}
    assert other["swd_exemplar_64"] != values["swd_64"]  # the metric's own seed overrides ctx.seed


def test_metric_rejects_too_small_images(tmp_path: Path) -> None:
    ctx = EvalContext(tmp_path, tmp_path, tmp_path, "tiny", image_size=8)
    with pytest.raises(UserError, match="min_resolution"):
        swd.SWD().setup(ctx)
    with pytest.raises(UserError, match="divisible"):
        swd.SWD().setup(EvalContext(tmp_path, tmp_path, tmp_path, "odd", image_size=90))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(sets: dict[str, torch.Tensor]) -> None:
    def chunks(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[i : i + 8] for i in range(0, len(x), 8)]

    cpu = run_swd(sets["a"], sets["b"])
    cuda = swd.compute_swd(chunks(sets["a"]), 32, chunks(sets["b"]), 32, 64, device="cuda", progress=False)
    assert cuda == pytest.approx(cpu, rel=1e-3)
