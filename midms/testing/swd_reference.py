"""Plain NumPy/SciPy SWD, written close to the Progressive GAN reference; the yardstick for :mod:`.swd`.

Same protocol as :mod:`midms.metrics.swd` (Karras et al., ICLR 2018;
https://github.com/tkarras/progressive_growing_of_gans, ``metrics/sliced_wasserstein.py``): full 5×5
``scipy.ndimage.convolve`` with ``mode="mirror"``, explicit zero insertion, per-patch loops, projections
sorted along the patch axis. Used by the tests and ``benchmarks/perf_swd.py``; not by the evaluator.

Patch positions (N×P×2 top-left corners per level) and directions (R×D×K per level) can be passed in, so
this and the torch version can be fed identical randomness; otherwise they are drawn from ``rng``.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

BINOMIAL_KERNEL = (np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0).astype(np.float32)


def pyramid_down(x: np.ndarray) -> np.ndarray:
    """Mirror-border binomial blur of N×C×H×W ``x``, then every 2nd pixel."""
    return scipy.ndimage.convolve(x, BINOMIAL_KERNEL[None, None], mode="mirror")[:, :, ::2, ::2]


def pyramid_up(x: np.ndarray) -> np.ndarray:
    """Zero insertion to N×C×2H×2W, then mirror-border blur with the kernel ×4."""
    n, c, h, w = x.shape
    up = np.zeros((n, c, 2 * h, 2 * w), dtype=x.dtype)
    up[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(up, BINOMIAL_KERNEL[None, None] * 4.0, mode="mirror")


def laplacian_pyramid(x: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Finest band first, low-pass residual last."""
    gaussians = [np.asarray(x, dtype=np.float32)]
    for _ in range(num_levels - 1):
        gaussians.append(pyramid_down(gaussians[-1]))
    bands = [g - pyramid_up(coarser) for g, coarser in zip(gaussians[:-1], gaussians[1:], strict=True)]
    return bands + [gaussians[-1]]


def reconstruct_laplacian_pyramid(levels: list[np.ndarray]) -> np.ndarray:
    image = levels[-1]
    for band in reversed(levels[:-1]):
        image = band + pyramid_up(image)
    return image


def patch_descriptors(level: np.ndarray, positions: np.ndarray, patch_size: int) -> np.ndarray:
    """(N·P)×(C·s·s) descriptors, rows image-major, each laid out (channel, row, column)."""
    n, c = level.shape[:2]
    p = positions.shape[1]
    out = np.empty((n * p, c * patch_size * patch_size), dtype=np.float32)
    for i in range(n):
        for j in range(p):
            top, left = positions[i, j]
            out[i * p + j] = level[i, :, top : top + patch_size, left : left + patch_size].reshape(-1)
    return out


def normalize_descriptors(desc: np.ndarray, channels: int = 3) -> np.ndarray:
    """Per-channel standardisation over all patches and pixels (population std), as a new array."""
    view = desc.reshape(desc.shape[0], channels, -1)
    view = (view - view.mean(axis=(0, 2), keepdims=True)) / view.std(axis=(0, 2), keepdims=True)
    return view.reshape(desc.shape[0], -1).astype(np.float32)


def random_directions(dim: int, directions: int, repeats: int, rng: np.random.Generator) -> np.ndarray:
    dirs = rng.standard_normal((repeats, dim, directions))
    dirs /= np.sqrt(np.sum(dirs**2, axis=1, keepdims=True))
    return dirs.astype(np.float32)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Mean over repeats of the mean |sorted(a·d) - sorted(b·d)| over patches and directions (no ×1e3)."""
    results = []
    for dirs in directions:
        proj_a = np.sort(a @ dirs, axis=0)
        proj_b = np.sort(b @ dirs, axis=0)
        results.append(np.mean(np.abs(proj_a - proj_b)))
    return float(np.mean(results))


def descriptors(
    images: np.ndarray, positions: list[np.ndarray], patch_size: int, minibatch: int = 32
) -> list[np.ndarray]:
    """Normalised descriptors per level of uint8 N×3×H×W ``images``, processed ``minibatch`` at a time."""
    per_level: list[list[np.ndarray]] = [[] for _ in positions]
    for start in range(0, len(images), minibatch):
        batch = images[start : start + minibatch]
        for lod, level in enumerate(laplacian_pyramid(batch, len(positions))):
            per_level[lod].append(patch_descriptors(level, positions[lod][start : start + len(batch)], patch_size))
    return [normalize_descriptors(np.concatenate(d)) for d in per_level]


def swd(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    patches_per_image: int = 128,
    patch_size: int = 7,
    directions: int = 128,
    repeats: int = 4,
    min_resolution: int = 16,
    real_positions: list[np.ndarray] | None = None,
    fake_positions: list[np.ndarray] | None = None,
    direction_sets: list[np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """``{"swd": mean, "swd_<res>": ...}`` (×1e3) of two uint8 N×3×S×S arrays of equal N."""
    rng = np.random.default_rng(seed)
    resolutions = []
    res = real.shape[-1]
    while res >= min_resolution:
        resolutions.append(res)
        res //= 2

    def draw(n: int) -> list[np.ndarray]:
        return [rng.integers(0, r - patch_size + 1, (n, patches_per_image, 2)) for r in resolutions]

    real_positions = draw(len(real)) if real_positions is None else real_positions
    fake_positions = draw(len(fake)) if fake_positions is None else fake_positions
    if direction_sets is None:
        direction_sets = [random_directions(3 * patch_size**2, directions, repeats, rng) for _ in resolutions]
    real_desc = descriptors(real, real_positions, patch_size)
    fake_desc = descriptors(fake, fake_positions, patch_size)
    values = {
        f"swd_{r}": sliced_wasserstein(a, b, d) * 1e3
        for r, a, b, d in zip(resolutions, real_desc, fake_desc, direction_sets, strict=True)
    }
    values["swd"] = float(np.mean(list(values.values())))
    return values
