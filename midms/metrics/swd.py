"""Sliced Wasserstein distance (SWD) between Laplacian-pyramid patch distributions.

The protocol of Progressive GAN (Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for Improved
Quality, Stability, and Variation", ICLR 2018; reference code ``metrics/sliced_wasserstein.py`` in
https://github.com/tkarras/progressive_growing_of_gans), as reported by CoCosNet and its successors:

1. Each uint8 image is taken as float32 in [0, 255] (no rescaling) and split into a Laplacian pyramid from
   full size down to 16 px (256 -> 256, 128, 64, 32, 16). Blurring uses the 5×5 binomial kernel
   (``[1, 4, 6, 4, 1]`` outer product / 256) with mirror borders (``scipy.ndimage`` mode ``"mirror"``, i.e.
   the edge pixel is not repeated: torch's ``"reflect"``). Down = blur, keep every 2nd pixel; up = insert
   zeros, blur with the kernel ×4. Level *i* = G_i - up(G_{i+1}); the last level is the low-pass G_L.
2. Per image and level, 128 random 7×7 patches (positions uniform over all patches inside the image) give
   descriptors of 3·7·7 = 147 values. Real and fake positions are drawn independently.
3. Each descriptor set (all images of one side, one level) is normalised by its own per-channel mean and
   standard deviation (population std), taken over all patches and pixels of that channel.
4. SWD = mean over 4 repeats of: 128 random unit directions; project both sets, sort each projection,
   mean absolute difference of the sorted values. Values are ×1e3 (the reference's ``SWDx1e3``) and the
   reported ``swd`` is the mean over levels.

Differences from the reference, none of which changes the distribution of the result: a descriptor is laid
out (channel, row, column) where the reference's index grid stores it (channel, column, row) - a fixed
permutation of components, invisible to isotropic Gaussian directions; randomness comes from a seeded
``torch.Generator`` instead of NumPy's global state; a zero standard deviation is clamped instead of
producing NaN; sets of unequal size are compared on a random subset of the larger one (the reference
requires equal sizes).

Speed: the blur runs as two 1-D passes of shifted slices, up-sampling skips the inserted zeros, the CPU
pyramid works a few images at a time, and on CPU the sorts and sums go through NumPy. All are exact
rewrites, checked against the plain NumPy/SciPy version in :mod:`midms.testing.swd_reference` by the tests
and ``benchmarks/perf_swd.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from midms.errors import UserError
from midms.metrics import uncertainty
from midms.metrics.base import EvalBatch, EvalContext, Metric
from midms.metrics.folders import list_images

logger = logging.getLogger(__name__)

_BINOMIAL_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)
_MAX_SORT_ELEMENTS = 1 << 24  # bounds the projection/sort temporaries of one step (64 MiB of float32)
_CPU_GROUP = 8  # images per CPU task


# ---------------------------------------------------------------------------------------------- pyramid


def binomial_kernel(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The 5×5 binomial (Gaussian-like) kernel of ``cv2.pyrDown``: outer([1, 4, 6, 4, 1]) / 256."""
    taps = torch.tensor(_BINOMIAL_TAPS, dtype=torch.float64)
    return (torch.outer(taps, taps) / 256.0).to(dtype=dtype, device=device)


def _binomial_1d(padded: Tensor, dim: int, stride: int, gain: float) -> Tensor:
    """[1, 4, 6, 4, 1]/16 (×gain) along ``dim`` of a tensor padded by 2 there; keep every ``stride``-th output."""
    count = (padded.shape[dim] - 5) // stride + 1

    def tap(offset: int) -> Tensor:
        index = [slice(None)] * padded.ndim
        index[dim] = slice(offset, offset + (count - 1) * stride + 1, stride)
        return padded[tuple(index)]

    return (tap(0) + tap(4) + 4 * (tap(1) + tap(3)) + 6 * tap(2)) * (gain / 16)


def mirror_blur(x: Tensor, gain: float = 1.0, stride: int = 1) -> Tensor:
    """Convolve each channel of B×C×H×W ``x`` with the binomial kernel ×``gain``, mirror borders, given stride.

    Equal to ``scipy.ndimage.convolve(x, kernel, mode="mirror")[..., ::stride, ::stride]``; done as two 1-D
    passes of shifted slices, which on CPU is several times faster than a 1-channel ``conv2d``.
    """
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")  # torch "reflect" == scipy "mirror": edge not repeated
    rows = _binomial_1d(padded, -2, stride, math.sqrt(gain))
    return _binomial_1d(rows, -1, stride, math.sqrt(gain))


def pyramid_down(x: Tensor) -> Tensor:
    """Blur, then keep every 2nd pixel (rows and columns starting at 0): B×C×H×W -> B×C×⌈H/2⌉×⌈W/2⌉."""
    return mirror_blur(x, stride=2)


def pyramid_up(x: Tensor) -> Tensor:
    """Insert zeros after every pixel, then blur with the kernel ×4 (mirror borders): B×C×H×W -> B×C×2H×2W.

    Computed per axis without the zeros (the literal version: ``swd_reference.pyramid_up``): even outputs
    are (x[i-1] + 6x[i] + x[i+1]) / 8, odd ones (x[i] + x[i+1]) / 2. Mirroring the zero-inserted signal
    makes the borders asymmetric: x[-1] = x[1] on the left but x[n] = x[n-1] on the right.
    """
    return _upsample_1d(_upsample_1d(x, -2), -1)


def _upsample_1d(x: Tensor, dim: int) -> Tensor:
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 1, 1), x, x.narrow(dim, n - 1, 1)], dim)
    left, centre, right = (padded.narrow(dim, i, n) for i in range(3))
    even = (left + right).add_(centre, alpha=6).mul_(1 / 8)
    odd = (centre + right).mul_(0.5)
    return torch.stack([even, odd], dim=dim % x.ndim + 1).flatten(dim % x.ndim, dim % x.ndim + 1)


def laplacian_pyramid(x: Tensor, num_levels: int) -> list[Tensor]:
    """Levels from finest to coarsest: band-pass ``G_i - up(G_{i+1})``, then the low-pass residual.

    ``x`` is B×C×H×W float; H and W must stay even down to the last level.
    """
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    levels: list[Tensor] = []
    current = x
    for _ in range(num_levels - 1):
        h, w = current.shape[-2:]
        if h % 2 or w % 2 or min(h, w) < 3:
            raise ValueError(f"cannot halve a {h}×{w} level exactly; use sizes divisible by 2^(levels-1)")
        coarser = pyramid_down(current)
        levels.append(current - pyramid_up(coarser))
        current = coarser
    levels.append(current)
    return levels


def reconstruct_laplacian_pyramid(levels: list[Tensor]) -> Tensor:
    """Inverse of :func:`laplacian_pyramid` (exact up to float rounding)."""
    image = levels[-1]
    for band in reversed(levels[:-1]):
        image = band + pyramid_up(image)
    return image


def pyramid_resolutions(image_size: int, min_resolution: int = 16) -> list[int]:
    """Resolutions of the levels: ``image_size`` halved while it stays >= ``min_resolution`` (256 -> 5 levels)."""
    resolutions = []
    res = image_size
    while res >= min_resolution:
        resolutions.append(res)
        res //= 2
    return resolutions


# ---------------------------------------------------------------------------------------------- patches


def sample_patch_positions(
    num_images: int, patches_per_image: int, resolution: int, patch_size: int, generator: torch.Generator
) -> Tensor:
    """Top-left corners (row, col), int64 N×P×2, uniform over all patches lying inside the image."""
    if patch_size > resolution:
        raise ValueError(f"patch_size {patch_size} exceeds the {resolution} px level")
    return torch.randint(0, resolution - patch_size + 1, (num_images, patches_per_image, 2), generator=generator)


def patch_descriptors(level: Tensor, positions: Tensor, patch_size: int) -> Tensor:
    """Cut ``patch_size``² patches at ``positions`` (B×P×2 top-left) from B×C×H×W ``level``.

    Returns (B·P)×(C·s·s), each row laid out (channel, row, column), image-major.
    """
    b, c, h, w = level.shape
    p = positions.shape[1]
    positions = positions.to(level.device)
    offsets = torch.arange(patch_size, device=level.device)
    rows = positions[..., 0:1] + offsets  # B×P×s
    cols = positions[..., 1:2] + offsets  # B×P×s
    flat_index = (rows[..., :, None] * w + cols[..., None, :]).reshape(b, 1, p * patch_size * patch_size)
    patches = level.reshape(b, c, h * w).gather(2, flat_index.expand(b, c, -1))  # B×C×(P·s·s)
    return patches.view(b, c, p, patch_size * patch_size).transpose(1, 2).reshape(b * p, -1)


def normalize_descriptors(desc: Tensor, channels: int = 3, eps: float = 1e-8) -> Tensor:
    """Standardise M×(C·s·s) descriptors in place by per-channel mean and population std over all rows/pixels."""
    view = desc.view(desc.shape[0], channels, -1)
    var, mean = torch.var_mean(view, dim=(0, 2), correction=0, keepdim=True)
    view.sub_(mean).div_(var.sqrt().clamp_min(eps))
    return desc


def collect_descriptors(
    batches: Iterable[Tensor],
    positions: list[Tensor],
    patch_size: int,
    device: torch.device | str = "cpu",
    progress: str | None = None,
) -> list[Tensor]:
    """Normalised descriptors per level for a stream of uint8 B×3×H×W chunks.

    ``positions[l]`` holds N×P×2 corners for level ``l`` and all N images; only the descriptors
    (N·P rows per level) are kept, so memory is bounded by the chunk size plus the result.
    ``progress`` is a tqdm label (``None``: no bar).
    """
    num_images, per_image = positions[0].shape[:2]
    channels = 3
    out = [
        torch.empty(num_images * per_image, channels * patch_size**2, dtype=torch.float32, device=device)
        for _ in positions
    ]

    def extract(images: Tensor, first: int) -> None:
        rows = slice(first * per_image, (first + len(images)) * per_image)
        for lod, level in enumerate(laplacian_pyramid(images.float(), len(positions))):  # [0, 255] as the reference
            out[lod][rows] = patch_descriptors(level, positions[lod][first : first + len(images)], patch_size)

    on_cpu = torch.device(device).type == "cpu"
    seen = 0
    with (
        _image_group_pool(torch.get_num_threads() if on_cpu else 0) as pool,
        tqdm(total=num_images, desc=progress, unit="img", disable=progress is None, leave=False) as bar,
    ):
        for batch in batches:
            n = batch.shape[0]
            if seen + n > num_images:
                raise ValueError(f"got more than the {num_images} images positions were drawn for")
            batch = batch.to(device)
            if pool is None:
                extract(batch, seen)
            else:
                groups = [(batch[i : i + _CPU_GROUP], seen + i) for i in range(0, n, _CPU_GROUP)]
                list(pool.map(lambda group: extract(*group), groups))
            seen += n
            bar.update(n)
    if seen != num_images:
        raise ValueError(f"got {seen} images, expected {num_images}")
    for desc in out:
        normalize_descriptors(desc, channels)
    return out


@contextmanager
def _image_group_pool(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """Threads for CPU image groups, with torch ops single-threaded meanwhile; ``None`` when ``workers`` is 0.

    A group of a few images stays in cache (~8x faster than 64 at once); its pyramid is hundreds of small
    ops, whose intra-op OpenMP barriers cost more than they give and collapse (~30x) on a busy machine.
    So the parallelism is over groups instead (torch releases the GIL); the thread count is restored on exit.
    """
    if workers == 0:
        yield None
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield pool
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------ sliced Wasserstein


def random_directions(dim: int, directions: int, repeats: int, generator: torch.Generator) -> Tensor:
    """Unit directions, float32 R×D×K (column ``k`` of repeat ``r`` has norm 1), drawn in float64."""
    dirs = torch.randn((repeats, dim, directions), generator=generator, dtype=torch.float64)
    dirs /= dirs.norm(dim=1, keepdim=True)
    return dirs.float()


def _sort_rows(*rows: Tensor) -> None:
    """Sort each row of the given k×M tensors in place."""
    if rows[0].device.type != "cpu":
        for x in rows:
            x.copy_(torch.sort(x, dim=-1).values)
        return
    # On CPU NumPy's SIMD sort is ~5-10x faster than torch.sort; sorts release the GIL, so rows are split
    # over torch's thread count.
    arrays = [x.numpy() for x in rows]
    workers = min(torch.get_num_threads(), arrays[0].shape[0])
    bounds = np.linspace(0, arrays[0].shape[0], workers + 1).astype(int)
    blocks = [x[lo:hi] for x in arrays for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        for block in blocks:
            block.sort(axis=-1)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda block: block.sort(axis=-1), blocks))


def _sorted_l1(proj_a: Tensor, proj_b: Tensor, a_sorted: bool = False) -> float:
    """Σ |sort(a_k) - sort(b_k)| over the rows k of two k×M projections (``proj_b``, and ``proj_a`` unless
    ``a_sorted``, are sorted in place)."""
    _sort_rows(*((proj_b,) if a_sorted else (proj_a, proj_b)))
    if proj_a.device.type != "cpu":
        return (proj_a - proj_b).abs_().sum(dtype=torch.float64).item()
    a, b = proj_a.numpy(), proj_b.numpy()  # NumPy's reduction is ~4x faster than torch's here
    return float(np.abs(np.subtract(b, a, out=b), out=b).sum(dtype=np.float64))


def sliced_wasserstein(a: Tensor, b: Tensor, directions: Tensor) -> float:
    """Mean over repeats and directions of the 1-D Wasserstein-1 distance of the projected sets (no ×1e3).

    ``a`` and ``b`` are M×D descriptor sets of equal size; ``directions`` is R×D×K. Directions are processed
    in slices so the M×K projections never exceed a fixed number of elements.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"descriptor sets must be M×D of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    m = a.shape[0]
    repeats, _, k = directions.shape
    directions = directions.to(device=a.device, dtype=a.dtype)
    step = max(1, min(k, _MAX_SORT_ELEMENTS // max(m, 1)))
    total = 0.0
    with _full_precision_matmul():
        for r in range(repeats):
            for j in range(0, k, step):
                dirs_t = directions[r, :, j : j + step].T.contiguous()  # k'×D
                total += _sorted_l1(dirs_t @ a.T, dirs_t @ b.T)  # projections: k'×M
    return total / (repeats * k * m)


@contextmanager
def _full_precision_matmul() -> Iterator[None]:
    # TF32 (e.g. under Lightning's "high" matmul precision) rounds projections at ~1e-3, about one unit of
    # the ×1e3 SWD, i.e. a few % of typical values; the projections are cheap next to the sorts: keep fp32.
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def swd_from_descriptors(
    real: list[Tensor],
    fake: list[Tensor],
    directions: list[Tensor],
    resolutions: list[int],
    generator: torch.Generator | None = None,
    name: str = "swd",
) -> dict[str, float]:
    """``{name: mean over levels, f"{name}_{res}": per level}``, all ×1e3, from normalised descriptors.

    When the sets differ in size, the larger one is compared on a random subset (drawn from ``generator``).
    """
    values: dict[str, float] = {}
    for res, a, b, dirs in zip(resolutions, real, fake, directions, strict=True):
        if a.shape[0] != b.shape[0]:
            m = min(a.shape[0], b.shape[0])
            a, b = (_subsample(t, m, generator) for t in (a, b))
        values[f"{name}_{res}"] = sliced_wasserstein(a, b, dirs) * 1e3
    values[name] = float(np.mean(list(values.values())))
    return values


def _subsample(desc: Tensor, m: int, generator: torch.Generator | None) -> Tensor:
    if desc.shape[0] == m:
        return desc
    index = torch.randperm(desc.shape[0], generator=generator)[:m]
    return desc[index.to(desc.device)]


def swd_bootstrap(
    real: list[Tensor],
    fake: list[Tensor],
    directions: list[Tensor],
    patches_per_image: int,
    resamples: int,
    seed: int,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """The SWD (×1e3, mean over levels) of ``resamples`` bootstrap resamples of the generated images: each takes
    the descriptor rows of N images drawn with replacement (rows are image-major, ``patches_per_image`` each),
    normalised as in the full set, against the same real descriptors and directions.

    When both sets have as many rows (the usual case), the real projections are sorted once and the generated
    ones projected once per slice of directions; a resample then gathers and sorts its rows only. Otherwise
    each resample is an SWD of its own (the larger set subsampled from ``generator``)."""
    num_fake = fake[0].shape[0] // patches_per_image
    draws = list(uncertainty.resample_indices(num_fake, resamples, seed))
    row_sets = [
        (torch.from_numpy(images)[:, None] * patches_per_image + torch.arange(patches_per_image)).flatten()
        for images in draws
    ]
    if all(a.shape == f.shape and a.ndim == 2 for a, f in zip(real, fake, strict=True)):
        levels = np.stack(
            [_bootstrap_level(a, f, dirs, row_sets) for a, f, dirs in zip(real, fake, directions, strict=True)]
        )
        return levels.mean(axis=0) * 1e3
    out = np.empty(resamples)
    for b, rows in enumerate(row_sets):
        levels = []
        for a, f, dirs in zip(real, fake, directions, strict=True):
            f = f[rows.to(f.device)]
            if a.shape[0] != f.shape[0]:
                m = min(a.shape[0], f.shape[0])
                a, f = (_subsample(t, m, generator) for t in (a, f))
            levels.append(sliced_wasserstein(a, f, dirs) * 1e3)
        out[b] = float(np.mean(levels))
    return out


def _bootstrap_level(real: Tensor, fake: Tensor, directions: Tensor, row_sets: list[Tensor]) -> np.ndarray:
    """:func:`sliced_wasserstein` of ``real`` against ``fake[rows]`` for each row set (equal sizes), sharing the
    real side's sorted projections and the generated side's projections between resamples."""
    m = real.shape[0]
    repeats, _, k = directions.shape
    directions = directions.to(device=real.device, dtype=real.dtype)
    step = max(1, min(k, _MAX_SORT_ELEMENTS // max(m, 1)))
    totals = np.zeros(len(row_sets))
    with _full_precision_matmul():
        for r in range(repeats):
            for j in range(0, k, step):
                dirs_t = directions[r, :, j : j + step].T.contiguous()  # k'×D
                real_sorted = dirs_t @ real.T  # k'×M, sorted once
                _sort_rows(real_sorted)
                fake_proj = dirs_t @ fake.T
                for b, rows in enumerate(row_sets):
                    totals[b] += _sorted_l1(real_sorted, fake_proj[:, rows.to(fake.device)], a_sorted=True)
    return totals / (repeats * k * m)


def compute_swd(
    real_batches: Iterable[Tensor],
    num_real: int,
    fake_batches: Iterable[Tensor],
    num_fake: int,
    image_size: int,
    *,
    patches_per_image: int = 128,
    patch_size: int = 7,
    directions: int = 128,
    repeats: int = 4,
    min_resolution: int = 16,
    seed: int = 0,
    device: torch.device | str = "cpu",
    name: str = "swd",
    progress: bool = True,
    bootstrap: int = 0,
) -> dict[str, float]:
    """SWD between two streams of uint8 B×3×S×S image chunks (S = ``image_size``); see the module docstring.

    All randomness comes from one CPU ``torch.Generator`` seeded with ``seed``, drawn in a fixed order
    (real positions, fake positions, directions), so the result does not depend on chunking or device. With
    ``bootstrap`` > 0, ``<name>_ci95`` is the bootstrap half-width over generated images
    (:mod:`midms.metrics.uncertainty`).
    """
    resolutions = pyramid_resolutions(image_size, min_resolution)
    if not resolutions:
        raise ValueError(f"image_size {image_size} is below min_resolution {min_resolution}")
    generator = torch.Generator().manual_seed(seed)
    real_pos = [sample_patch_positions(num_real, patches_per_image, r, patch_size, generator) for r in resolutions]
    fake_pos = [sample_patch_positions(num_fake, patches_per_image, r, patch_size, generator) for r in resolutions]
    dim = 3 * patch_size**2
    dirs = [random_directions(dim, directions, repeats, generator) for _ in resolutions]
    real = collect_descriptors(real_batches, real_pos, patch_size, device, "SWD real" if progress else None)
    fake = collect_descriptors(fake_batches, fake_pos, patch_size, device, "SWD fake" if progress else None)
    values = swd_from_descriptors(real, fake, dirs, resolutions, generator, name)
    if bootstrap:
        boot = swd_bootstrap(real, fake, dirs, patches_per_image, bootstrap, seed, generator)
        values[f"{name}_ci95"] = uncertainty.half_width(boot)
    return values


# ---------------------------------------------------------------------------------------------- metric


class SWD(Metric):
    """Sliced Wasserstein distance (×1e3) of Laplacian-pyramid patches, Progressive GAN protocol.

    Folder-level: compares every image in ``ctx.samples_dir`` with every image in
    ``ctx.reference_dir / "image"`` (names need not match). Reports ``swd`` (mean over levels, what papers
    report) and ``swd_<res>`` per level. Lower is better.
    """

    higher_is_better = False
    min_images = 2  # a distance between image distributions: one image is no distribution

    def __init__(
        self,
        name: str = "swd",
        patches_per_image: int = 128,
        patch_size: int = 7,
        directions: int = 128,
        repeats: int = 4,
        min_resolution: int = 16,
        chunk_size: int = 64,
        seed: int | None = None,
        bootstrap: int = 0,
    ) -> None:
        super().__init__(name)
        self.bootstrap = bootstrap
        self.patches_per_image = patches_per_image
        self.patch_size = patch_size
        self.directions = directions
        self.repeats = repeats
        self.min_resolution = min_resolution
        self.chunk_size = chunk_size
        self.seed = seed

    def setup(self, ctx: EvalContext) -> None:
        """Check that the image size gives at least one level the patches fit in, and halves exactly."""
        resolutions = pyramid_resolutions(ctx.image_size, self.min_resolution)
        if not resolutions or resolutions[-1] < self.patch_size:
            raise UserError(
                f"SWD needs images of at least min_resolution={self.min_resolution} px (and patches of "
                f"{self.patch_size} px fitting the coarsest level); got image_size={ctx.image_size}. "
                "Lower metrics.swd.min_resolution or evaluate at a larger size."
            )
        if any(r % 2 for r in resolutions[:-1]):
            raise UserError(
                f"SWD halves the images down to {resolutions[-1]} px, so image_size={ctx.image_size} must be "
                f"divisible by {2 ** (len(resolutions) - 1)}; evaluate at a power-of-two size such as 256."
            )

    reads_folders = True
    unit = "×10³ (patch distance)"

    def update(self, batch: EvalBatch) -> None:
        """Nothing to accumulate: SWD reads the saved folders in :meth:`compute`."""
        return None

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        """SWD between the generated folder and the real ``image/`` folder of the split."""
        self.setup(ctx)
        fake_paths = list(list_images(ctx.samples_dir).values())
        real_paths = list(list_images(Path(ctx.reference_dir) / "image").values())
        if len(real_paths) != len(fake_paths):
            logger.warning(
                "SWD: %d real vs %d generated images; the larger descriptor set is randomly subsampled.",
                len(real_paths),
                len(fake_paths),
            )
        seed = ctx.seed if self.seed is None else self.seed
        logger.info(
            "SWD: %d real, %d fake images at %d px, seed %d", len(real_paths), len(fake_paths), ctx.image_size, seed
        )
        values = compute_swd(
            ctx.features.batches(real_paths, self.chunk_size, ctx.image_size),  # decoded once per scoring
            len(real_paths),
            ctx.features.batches(fake_paths, self.chunk_size, ctx.image_size),
            len(fake_paths),
            ctx.image_size,
            patches_per_image=self.patches_per_image,
            patch_size=self.patch_size,
            directions=self.directions,
            repeats=self.repeats,
            min_resolution=self.min_resolution,
            seed=seed,
            device=ctx.device,
            name=self.name,
            bootstrap=self.bootstrap,
        )
        if self.bootstrap:
            self.protocol = {"bootstrap": uncertainty.protocol(self.bootstrap, seed)}
        logger.info("SWD: %s", ", ".join(f"{k}={v:.3f}" for k, v in values.items()))
        return values
