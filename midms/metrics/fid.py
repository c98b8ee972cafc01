"""FID and KID of the generated test images against the real test images of the split, through clean-fid.

Both metrics use clean-fid (Parmar, Zhang and Zhu, "On Aliased Resizing and Surprising Subtleties in GAN
Evaluation", CVPR 2022; https://github.com/GaParmar/clean-fid) for everything that decides the numbers:
the image reading and resizing of each mode (``cleanfid.utils.ResizeDataset`` / ``cleanfid.resize``), the
Inception networks (``cleanfid.inception_torchscript.InceptionV3W`` and, for ``legacy_pytorch``, the
pytorch-fid port ``cleanfid.inception_pytorch.InceptionV3``) and the KID estimator
(``cleanfid.fid.kernel_distance``, re-done in :func:`kid_subsets` to keep each subset's value). This module
adds what a benchmark of many runs needs around it:

- **modes**: ``clean`` (default; anti-aliased PIL bicubic resize to 299 in float, clean-fid's
  recommendation), ``legacy_pytorch`` (bilinear ``F.interpolate`` to 299 and the pytorch-fid weights, as in
  https://github.com/mseitzer/pytorch-fid: the numbers most exemplar-based translation papers report) and
  ``legacy_tensorflow`` (the TF graph's own resize inside the network, as the original TTUR code);
- **a reference cache**: mean, covariance and features of the real split are computed once per protocol
  and stored under ``<cache_dir>/fid_stats/<key>.npz`` (atomic write); every run of a sweep reuses them;
- **one read per evaluation**: FID and KID of one evaluation share the features of both folders;
- **no network**: the Inception of each mode is built from a local file (:mod:`midms.metrics.inception`);
  when it is absent the metric is skipped with the file, the folder and the one-line fix.

The Fréchet distance is computed here (:func:`frechet_distance`) rather than by ``cleanfid.fid.
frechet_distance``: the same formula through two symmetric eigendecompositions, real by construction and
stable on the rank-deficient covariances of small test sets, where a general matrix square root is not.

Configured as two metrics (``metrics.fid`` and ``metrics.kid``)::

    fid:
      _target_: midms.metrics.fid.FID
      mode: clean            # clean | legacy_pytorch | legacy_tensorflow
      weights: null          # or /path/to/inception-2015-12-05.pt (pt_inception-...pth for legacy_pytorch)
    kid:
      _target_: midms.metrics.fid.KID
      mode: clean

Folder level: ``update`` does nothing; ``compute`` reads ``ctx.samples_dir`` and ``ctx.reference_dir/image``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from midms.errors import UserError
from midms.files import atomic_write
from midms.metrics import uncertainty
from midms.metrics.base import EvalBatch, EvalContext, Metric, SharedFeatures
from midms.metrics.folders import list_images
from midms.metrics.inception import FeatureFn, check_mode, cleanfid_version, inception_extractor

log = logging.getLogger(__name__)

_CACHE_FORMAT = 1  # bump when the layout of the cached statistics changes
#: the library whose numbers each clean-fid mode reproduces (what a published FID states)
FID_IMPLEMENTATIONS = {"clean": "clean-fid", "legacy_pytorch": "pytorch-fid", "legacy_tensorflow": "tensorflow-fid"}


# ------------------------------------------------------------------------------------------- distances


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance of the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

        d² = ‖mu1 − mu2‖² + Tr(sigma1 + sigma2 − 2 (sigma1 sigma2)^½)

    This is the FID formula (Heusel et al., NeurIPS 2017) as in pytorch-fid and
    ``cleanfid.fid.frechet_distance``, which take a general ``scipy.linalg.sqrtm`` of the non-symmetric
    product. Only the *trace* of that square root is needed, and ``sigma1 sigma2 = S (S sigma2)`` with
    ``S = sigma1^½`` has the same eigenvalues as the symmetric positive semi-definite ``S sigma2 S``, so

        Tr (sigma1 sigma2)^½ = Σ_i sqrt(λ_i(S sigma2 S)),

    computed here with two symmetric eigendecompositions: real by construction (no imaginary residue to
    discard), no ``eps`` retry for singular products (covariances of N < 2048 images are rank deficient),
    and faster than ``sqrtm``. Tiny negative eigenvalues and a tiny negative result, both round-off, are
    clipped to 0. Inputs are taken in float64.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S = sigma1^½
    m = sqrt_s1 @ s2 @ sqrt_s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    return float(max(d2, 0.0))


def frechet_distance_bootstrap(
    fake: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, resamples: int, seed: int = 0
) -> np.ndarray:
    """The Fréchet distance of ``resamples`` bootstrap resamples of the generated features (N×D rows drawn with
    replacement, :func:`midms.metrics.uncertainty.resample_indices`) to fixed reference statistics.

    Each value equals :func:`frechet_distance` on the resample's mean and covariance. The trace term uses
    ``R = ref_sigma^½`` once: ``Tr (sigma_b ref_sigma)^½`` is the sum of the square roots of the eigenvalues of
    ``R sigma_b R = Y_bᵀ Y_b / (N − 1)`` with ``Y_b`` the centred rows of ``X R``, whose nonzero eigenvalues are
    those of the N×N Gram matrix ``Y_b Y_bᵀ / (N − 1)``: a resample costs an N×N eigendecomposition when N < D.
    """
    x = np.asarray(fake, dtype=np.float64)
    n, d = x.shape
    w, v = np.linalg.eigh((ref_sigma + ref_sigma.T) / 2)
    y = x @ ((v * np.sqrt(np.clip(w, 0, None))) @ v.T)
    trace_ref, mu_ref = float(np.trace(ref_sigma)), np.asarray(ref_mu, dtype=np.float64)
    out = np.empty(resamples)
    for b, index in enumerate(uncertainty.resample_indices(n, resamples, seed)):
        xb, yb = x[index], y[index]
        mu = xb.mean(0)
        xc, yc = xb - mu, yb - yb.mean(0)
        small = yc @ yc.T if n <= d else yc.T @ yc
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(small / (n - 1)), 0, None)).sum()
        diff = mu - mu_ref
        out[b] = max(diff @ diff + (xc * xc).sum() / (n - 1) + trace_ref - 2 * tr_covmean, 0.0)
    return out


def kid_subsets(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> np.ndarray:
    """The per-subset unbiased MMD² estimates of KID (Bińkowski et al., ICLR 2018); KID is their mean.

    ``cleanfid.fid.kernel_distance``'s estimator and subset draws (cubic polynomial kernel ``(x·y/D + 1)³``,
    subsets of ``min(N1, N2, max_subset_size)`` without replacement, the reference side drawn first, from the
    global NumPy generator), seeded with ``seed`` for the call and restored afterwards, so a run's KID does not
    depend on what ran before it. It is re-done here to keep each subset's value: their standard deviation is
    the ± published with KID. The tests check the mean against clean-fid's function.
    """
    if min(len(feats1), len(feats2)) < 2:
        raise UserError(f"KID needs at least 2 images on each side, got {len(feats1)} and {len(feats2)}.")
    d = feats1.shape[1]
    m = min(len(feats1), len(feats2), max_subset_size)
    state = np.random.get_state()
    np.random.seed(seed)
    values = np.empty(num_subsets)
    try:
        for i in range(num_subsets):
            x = feats2[np.random.choice(len(feats2), m, replace=False)]
            y = feats1[np.random.choice(len(feats1), m, replace=False)]
            a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
            b = (x @ y.T / d + 1) ** 3
            values[i] = ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m
    finally:
        np.random.set_state(state)
    return values


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """KID: the mean of :func:`kid_subsets` (= ``cleanfid.fid.kernel_distance`` under the same seed)."""
    return float(kid_subsets(feats1, feats2, num_subsets, max_subset_size, seed).mean())


# -------------------------------------------------------------------------------------------- features


@dataclass
class FeatureStats:
    """Features of a folder (N×D, as the extractor returned them) and their Gaussian statistics."""

    feats: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_features(cls, feats: np.ndarray) -> FeatureStats:
        if len(feats) < 2:
            raise UserError(f"FID needs at least 2 images per folder, got {len(feats)}.")
        return cls(feats=feats, mu=np.mean(feats, axis=0), sigma=np.cov(feats, rowvar=False))


class _ToSize:
    """Resize a uint8 H×W×3 image to the protocol resolution (PIL bicubic, as ``midms.imageio.load_image_tensor``)."""

    def __init__(self, size: int | None) -> None:
        self.size = size

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.size is None or img.shape[:2] == (self.size, self.size):
            return img
        return np.asarray(Image.fromarray(img).resize((self.size, self.size), Image.BICUBIC))


def _select_files(folder: str | Path, num: int | None = None) -> list[Path]:
    files = list(list_images(folder).values())  # sorted by stem
    if num is not None:
        if num > len(files):
            raise UserError(f"{num} reference images were asked for, but {folder} holds only {len(files)}.")
        files = files[:num]
    return files


def files_features(files: list[Path], extractor: FeatureFn, **options: Any) -> np.ndarray:
    """Features of image files as ``cleanfid.fid.get_files_features`` computes them: each file read as clean-fid
    reads it (``np.array(Image.open(path).convert("RGB"))``), then :func:`decoded_features` (``options``: its
    keyword arguments). Returns N×D."""
    images = []
    for f in files:
        with Image.open(f) as im:
            images.append(np.array(im.convert("RGB")))
    return decoded_features(images, extractor, **options)


def decoded_features(
    images: list[np.ndarray],
    extractor: FeatureFn,
    mode: str = "clean",
    image_size: int | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    description: str = "features",
    progress: bool = True,
) -> np.ndarray:
    """Features of images already decoded (uint8 H×W×3, as clean-fid reads a file: ``np.array(Image.open(path).
    convert("RGB"))``), as ``cleanfid.fid.get_files_features`` computes them from the files: each image brought to
    ``image_size`` (the protocol resolution) when it is not already there, resized for the network as ``mode`` does
    (``cleanfid.utils.ResizeDataset``), batched and passed through ``extractor``; without decoding the files again.
    Returns N×D."""
    from cleanfid.fid import get_batch_features
    from cleanfid.utils import ResizeDataset

    class Decoded(ResizeDataset):
        """clean-fid's dataset (its ``custom_image_tranform``, ``fn_resize`` and tensor conversion) over arrays."""

        def __getitem__(self, i: int) -> torch.Tensor:
            resized = self.fn_resize(self.custom_image_tranform(images[i]))
            return self.transforms(np.array(resized)) * 255 if resized.dtype == "uint8" else self.transforms(resized)

    check_mode(mode)
    if image_size is not None and images and images[0].shape[:2] != (image_size, image_size):
        log.warning("%s: images are %s, not %dpx: resizing them first", description, images[0].shape[:2], image_size)
    dataset = Decoded(list(range(len(images))), mode=mode)
    dataset.custom_image_tranform = _ToSize(image_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    with warnings.catch_warnings():  # clean-fid's "PyTorch" resizer silences all warnings process-wide
        batches = tqdm(loader, desc=description, disable=not progress, leave=False)
        return np.concatenate([get_batch_features(batch, extractor, torch.device(device)) for batch in batches])


def _fingerprint(files: list[Path], with_mtime: bool = False) -> str:
    """Names, sizes (and modification times): identifies a folder's state within one process."""
    h = hashlib.sha1()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns if with_mtime else ''}\n".encode())
    return h.hexdigest()


def content_fingerprint(files: list[Path]) -> str:
    """SHA-256 of the files' names and bytes: the key of cached statistics, so that other pictures under the
    same names and sizes never meet a stale cache. The files of a finished reference folder of the evaluation
    (:mod:`midms.evaluation.folder`) are named by its content key already: that key, without reading them again."""
    folder = files[0].parent.parent if files else None
    if folder is not None and all(f.parent.parent == folder for f in files) and (folder / ".complete").exists():
        manifest = folder / "manifest.json"
        if manifest.exists() and len(json.loads(manifest.read_text())) >= len(files):
            return f"reference-folder:{folder.name}:{','.join(sorted({f.parent.name for f in files}))}:{len(files)}"
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0".encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "x"


def reference_cache_key(
    dataset_key: str, resolution: int | None, mode: str, num_reference: int, extractor_id: str, files_id: str = ""
) -> tuple[str, dict[str, Any]]:
    """File stem of a reference-statistics entry, and the fields it covers.

    Everything that changes the statistics is in the key: the dataset (``dataset_key``: dataset, split,
    size, pairing), the resolution, the mode, the number of reference images, the feature extractor, the
    reference files (names and byte sizes) and the clean-fid version. The stem is readable and ends with a
    hash of all the fields.
    """
    fields = {
        "dataset_key": dataset_key,
        "resolution": resolution,
        "mode": mode,
        "num_reference": num_reference,
        "feature_extractor": extractor_id,
        "files": files_id,
        "clean_fid": cleanfid_version(),
        "format": _CACHE_FORMAT,
    }
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    res = f"{resolution}px" if resolution is not None else "native"
    stem = f"{_slug(dataset_key)}_{mode}_{res}_n{num_reference}_{_slug(extractor_id, 32)}_{digest}"
    return stem, fields


def _read_cache(path: Path, fields: dict[str, Any]) -> FeatureStats | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != fields:
                log.warning("reference stats %s belong to another protocol; recomputing", path)
                return None
            return FeatureStats(feats=z["feats"], mu=z["mu"], sigma=z["sigma"])
    except FileNotFoundError:
        return None
    except Exception as e:  # a truncated or foreign file: recompute and overwrite
        log.warning("reference stats %s are unreadable (%s); recomputing", path, e)
        return None


def _write_cache(path: Path, stats: FeatureStats, fields: dict[str, Any]) -> None:
    """Written atomically, so concurrent jobs race harmlessly."""
    key = np.array(json.dumps(fields))
    atomic_write(path, lambda f: np.savez(f, feats=stats.feats, mu=stats.mu, sigma=stats.sigma, key=key))


@dataclass
class _Spec:
    """How features are computed: everything but the folder."""

    extractor: FeatureFn
    extractor_id: str
    mode: str
    image_size: int | None
    batch_size: int
    num_workers: int
    device: torch.device
    progress: bool

    def features(self, files: list[Path], description: str, shared: SharedFeatures) -> np.ndarray:
        """Features of ``files``, each decoded once per scoring (``shared``: the images other metrics read too)."""
        return decoded_features(
            [shared.image(f) for f in files],
            self.extractor,
            mode=self.mode,
            image_size=self.image_size,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=self.device,
            description=description,
            progress=self.progress,
        )


def _reference_stats(
    spec: _Spec,
    real_dir: Path,
    num_reference: int | None,
    cache_dir: Path | None,
    dataset_key: str | None,
    shared: SharedFeatures,
) -> tuple[FeatureStats, dict[str, Any]]:
    """Statistics of the real folder: from ``shared``, else from the disk cache, else computed (and cached)."""
    files = _select_files(real_dir, num_reference)
    key = dataset_key if dataset_key is not None else str(real_dir.resolve())
    stem, fields = reference_cache_key(
        key, spec.image_size, spec.mode, len(files), spec.extractor_id, content_fingerprint(files)
    )
    path = cache_dir / "fid_stats" / f"{stem}.npz" if cache_dir is not None else None
    info: dict[str, Any] = {"num_reference": len(files), "reference_stats": str(path) if path else None}
    return shared.get(("ref", stem), lambda: _read_or_compute(spec, files, real_dir, path, fields, info, shared))


def _read_or_compute(
    spec: _Spec,
    files: list[Path],
    real_dir: Path,
    path: Path | None,
    fields: dict[str, Any],
    info: dict[str, Any],
    shared: SharedFeatures,
) -> tuple[FeatureStats, dict[str, Any]]:
    stats = _read_cache(path, fields) if path is not None else None
    info["reference_stats_cached"] = stats is not None
    if stats is None:
        stats = FeatureStats.from_features(spec.features(files, f"FID reference {real_dir.name}", shared))
        if path is not None:
            _write_cache(path, stats, fields)
            log.info("reference FID stats written to %s", path)
    else:
        log.info("reference FID stats read from %s", path)
    return stats, info


def _generated_features(spec: _Spec, fake_dir: Path, shared: SharedFeatures) -> np.ndarray:
    files = _select_files(fake_dir)
    key = ("fake", str(fake_dir.resolve()), _fingerprint(files, with_mtime=True), spec.mode, spec.image_size)
    key += (spec.extractor_id,)
    return shared.get(key, lambda: spec.features(files, f"FID generated {fake_dir.name}", shared))


# --------------------------------------------------------------------------------------------- metrics


class _CleanFIDMetric(Metric):
    """Shared set-up of :class:`FID` and :class:`KID` (same features, same reference cache)."""

    higher_is_better = False
    min_images = 2  # a covariance (FID) and an unbiased MMD (KID) need two images per set
    reads_folders = True

    def __init__(
        self,
        name: str | None = None,
        mode: str = "clean",
        weights: str | None = None,
        batch_size: int = 32,
        num_workers: int = 4,
        num_reference: int | None = None,
        progress: bool = True,
        feature_extractor: FeatureFn | None = None,
        feature_extractor_id: str | None = None,
    ) -> None:
        """
        Args:
            name: metric key in results (default ``fid`` / ``kid``).
            mode: clean-fid mode: ``clean``, ``legacy_pytorch`` (pytorch-fid, the numbers papers report) or
                ``legacy_tensorflow``.
            weights: local Inception weights file (``inception-2015-12-05.pt``; ``pt_inception-2015-12-05-
                6726825d.pth`` for ``legacy_pytorch``); default: where clean-fid keeps it, or
                ``<cache_dir>/weights/``.
            batch_size, num_workers: feature extraction batching and image-decoding workers.
            num_reference: use the first N real images (by name); default all.
            progress: tqdm progress over batches.
            feature_extractor: TESTS ONLY: a callable used instead of Inception (see :data:`FeatureFn`);
                it goes through the same reading, resizing, batching, statistics and caching.
            feature_extractor_id: its identity in the reference cache key (required with it).
        """
        super().__init__(name)
        check_mode(mode)
        if feature_extractor is not None and not feature_extractor_id:
            raise ValueError("feature_extractor needs a feature_extractor_id (it is part of the cache key)")
        self.mode = mode
        self.weights = weights
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_reference = num_reference
        self.progress = progress
        self.feature_extractor = feature_extractor
        self.feature_extractor_id = feature_extractor_id
        self._spec: _Spec | None = None
        self._weights_path: Path | None = None

    def implementation(self) -> str:
        """The FID implementation of the mode: published numbers are comparable only with the same one."""
        return FID_IMPLEMENTATIONS[self.mode]

    def setup(self, ctx: EvalContext) -> None:
        """Find and load the Inception weights (no network); raises ``MetricSkipped`` when they are absent."""
        if self.feature_extractor is not None:
            fn, fid_id, self._weights_path = self.feature_extractor, str(self.feature_extractor_id), None
        else:
            fn, fid_id, self._weights_path = inception_extractor(
                self.mode, self.weights, ctx.cache_dir, ctx.device, option=f"metrics.{self.name}.weights"
            )
        self._spec = _Spec(
            extractor=fn,
            extractor_id=fid_id,
            mode=self.mode,
            image_size=ctx.image_size,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=torch.device(ctx.device),
            progress=self.progress,
        )
        other = "png" if ctx.image_format != "png" else "jpg"
        log.warning(
            "%s: outputs saved as .%s: FID not comparable with numbers measured on .%s outputs (lossy JPEG moves "
            "it: CoCosNet on CelebA-HQ scores 14.3 with .jpg and 16.95 with .png)",
            self.name,
            ctx.image_format,
            other,
        )

    def _features(self, ctx: EvalContext) -> tuple[np.ndarray, FeatureStats]:
        if self._spec is None or self._spec.image_size != ctx.image_size:
            self.setup(ctx)
        assert self._spec is not None
        ref, ref_info = _reference_stats(
            self._spec,
            Path(ctx.reference_dir) / "image",
            self.num_reference,
            Path(ctx.cache_dir),
            ctx.dataset_key,
            ctx.features,
        )
        fake = _generated_features(self._spec, Path(ctx.samples_dir), ctx.features)
        found = sorted({p.suffix.lstrip(".").lower() for p in list_images(ctx.samples_dir).values()})
        if found != [ctx.image_format]:
            log.warning("%s: samples are .%s but the protocol says .%s", self.name, "/.".join(found), ctx.image_format)
        self.protocol = {
            "implementation": f"clean-fid {cleanfid_version()}",
            "mode": self.mode,
            "resolution": ctx.image_size,
            "image_format": ctx.image_format,
            "num_generated": len(fake),
            "feature_extractor": self._spec.extractor_id,
            "weights": str(self._weights_path) if self._weights_path else None,
            **ref_info,
        }
        if found != [ctx.image_format]:
            self.protocol["image_format_found"] = "/".join(found)
        return fake, ref

    def update(self, batch: EvalBatch) -> None:
        """Folder-level metric: nothing to do per batch."""
        return None


class FID(_CleanFIDMetric):
    """Fréchet Inception Distance of the generated test images to the split's real test images (clean-fid).

    ``compute`` returns ``{name: fid}``; lower is better. See the module docstring for modes and caching.
    """

    #: pytorch-fid's README: "the number of samples ... should be at least 2048", the feature dimension; below it
    #: the covariance is rank deficient and FID strongly biased (flagged in the tables)
    stable_min_images = 2048

    def __init__(self, *args: Any, bootstrap: int = 100, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bootstrap = bootstrap

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        fake, ref = self._features(ctx)
        stats = FeatureStats.from_features(fake)
        values = {self.name: frechet_distance(stats.mu, stats.sigma, ref.mu, ref.sigma)}
        self.protocol["stable_min_images"] = self.stable_min_images
        if self.bootstrap:
            boot = frechet_distance_bootstrap(fake, ref.mu, ref.sigma, self.bootstrap, seed=ctx.seed)
            values[f"{self.name}_ci95"] = uncertainty.half_width(boot)
            self.protocol["bootstrap"] = uncertainty.protocol(self.bootstrap, ctx.seed)
        return values


class KID(_CleanFIDMetric):
    """Kernel Inception Distance (clean-fid's ``kernel_distance``), from the same features as :class:`FID`.

    Extra args: ``num_subsets`` and ``max_subset_size`` of the subset estimator (clean-fid's defaults);
    subsets are drawn with ``ctx.seed``. ``compute`` returns ``{name: kid}``; lower is better.
    """

    def __init__(self, *args: Any, num_subsets: int = 100, max_subset_size: int = 1000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_subsets = num_subsets
        self.max_subset_size = max_subset_size

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        fake, ref = self._features(ctx)
        subsets = kid_subsets(fake, ref.feats, self.num_subsets, self.max_subset_size, seed=ctx.seed)
        self.protocol.update(num_subsets=self.num_subsets, max_subset_size=self.max_subset_size, seed=ctx.seed)
        return {self.name: float(subsets.mean()), f"{self.name}_subset_std": float(subsets.std())}
