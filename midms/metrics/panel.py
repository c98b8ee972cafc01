"""The metrics of the ``panel`` preset on DINOv2 / CLIP features (:mod:`midms.metrics.feature_spaces`).

- ``fd_dinov2``, ``fd_clip`` (:class:`FrechetDistance`): the Fréchet distance of :func:`midms.metrics.fid.
  frechet_distance` on DINOv2 ViT-L/14 features (Stein et al., NeurIPS 2023: ``FD_DINOv2``) or on CLIP
  ViT-L/14@336 embeddings, with the bootstrap interval of :mod:`midms.metrics.uncertainty`;
- ``cmmd`` (:class:`CMMD`): the MMD of Jayasumana et al. (CVPR 2024) on unit-norm CLIP ViT-L/14@336
  embeddings with a Gaussian RBF kernel, bandwidth sigma = 10, scaled by 1000, as ``distance.py`` of the
  reference code computes it: the mean of each kernel matrix over all its entries (diagonal included);
- ``prdc`` (:class:`PRDC`): improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) and density and
  coverage (Naeem et al., ICML 2020) on k-nearest-neighbour balls (k = 5) of the same features, by the
  authors' ``prdc`` package (https://github.com/clovaai/generative-evaluation-prdc).

The generated side is the evaluation's output folder; the reference side the split's real images, whose
features are cached (:func:`~midms.metrics.feature_spaces.reference_features`). Without the network's weights
a metric is skipped with the folder and the fix.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from midms.metrics import uncertainty
from midms.metrics.base import EvalBatch, EvalContext, Metric
from midms.metrics.feature_spaces import Embedder, folder_features, load_embedder, reference_features
from midms.metrics.fid import frechet_distance, frechet_distance_bootstrap

CMMD_SIGMA = 10.0  # the reference code's _SIGMA
CMMD_SCALE = 1000.0  # the reference code's _SCALE


def rbf_kernel(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-‖x_i − y_j‖² / (2 sigma²))`` for every row pair."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.exp(-np.clip(sq, 0, None) / (2 * sigma**2))


def cmmd(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """CMMD between embedding sets ``x`` (N×D) and ``y`` (M×D): scale · (mean K_xx + mean K_yy − 2 mean K_xy)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(scale * (rbf_kernel(x, x, sigma).mean() + rbf_kernel(y, y, sigma).mean()
                          - 2 * rbf_kernel(x, y, sigma).mean()))  # fmt: skip


class _FeatureSpaceMetric(Metric):
    """A metric on the features of one space; the network and the features are shared within an evaluation."""

    higher_is_better = False
    min_images = 2
    reads_folders = True

    def __init__(
        self,
        name: str | None = None,
        space: str = "dinov2_vitl14",
        weights: str | None = None,
        batch_size: int = 32,
        bootstrap: int = 100,
    ) -> None:
        super().__init__(name)
        self.space, self.weights, self.batch_size, self.bootstrap = space, weights, batch_size, bootstrap
        self._embedder: Embedder | None = None

    def setup(self, ctx: EvalContext) -> None:
        key = ("embedder", self.space, str(self.weights))
        self._embedder = ctx.features.get(
            key, lambda: load_embedder(self.space, self.weights, Path(ctx.cache_dir), ctx.device)
        )

    def update(self, batch: EvalBatch) -> None:
        """Folder-level: the features are read from the saved outputs in :meth:`compute`."""
        return None

    def _features(self, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
        if self._embedder is None:
            self.setup(ctx)
        embedder = self._embedder
        assert embedder is not None

        def both_sides() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
            fake = folder_features(
                embedder, Path(ctx.samples_dir), ctx.image_size, self.batch_size, "generated", ctx.features
            )
            real, info = reference_features(
                embedder, Path(ctx.reference_dir) / "image", ctx.image_size, self.batch_size, Path(ctx.cache_dir),
                ctx.dataset_key, ctx.features,
            )  # fmt: skip
            return fake, real, info

        fake, real, info = ctx.features.get(("features", embedder.identity, ctx.image_size), both_sides)
        self.protocol = {
            "feature_space": embedder.spec.name,
            "weights": embedder.identity,
            "resize": embedder.spec.resize,
            "resolution": ctx.image_size,
            "num_generated": len(fake),
            **info,
        }
        return fake, real

    def _interval(self, values: dict[str, float], boot: np.ndarray, ctx: EvalContext) -> None:
        values[f"{self.name}_ci95"] = uncertainty.half_width(boot)
        self.protocol["bootstrap"] = uncertainty.protocol(self.bootstrap, ctx.seed)


class FrechetDistance(_FeatureSpaceMetric):
    """Fréchet distance of the generated images' features to the real images' (``fd_dinov2``, ``fd_clip``)."""

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        fake, real = self._features(ctx)
        mu, sigma = real.mean(0), np.cov(real, rowvar=False)
        values = {self.name: frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), mu, sigma)}
        # below the feature dimension the covariance is rank deficient (the reason for pytorch-fid's 2048)
        self.stable_min_images = fake.shape[1]
        self.protocol["stable_min_images"] = fake.shape[1]
        if self.bootstrap:
            self._interval(values, frechet_distance_bootstrap(fake, mu, sigma, self.bootstrap, ctx.seed), ctx)
        return values


class CMMD(_FeatureSpaceMetric):
    """CMMD (see the module docstring); ``sigma`` and ``scale`` default to the paper's 10 and 1000."""

    def __init__(
        self, *args: Any, space: str = "clip_vitl14_336", sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE, **kw
    ) -> None:
        super().__init__(*args, space=space, **kw)
        self.sigma, self.scale = sigma, scale

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        fake, real = self._features(ctx)
        values = {self.name: cmmd(fake, real, self.sigma, self.scale)}
        self.protocol.update(sigma=self.sigma, scale=self.scale)
        if self.bootstrap:  # the kernel matrices once; a resample picks rows and columns of the generated side
            k_ff, k_fr = rbf_kernel(fake, fake, self.sigma), rbf_kernel(fake, real, self.sigma)
            k_rr = rbf_kernel(real, real, self.sigma).mean()
            draws = uncertainty.resample_indices(len(fake), self.bootstrap, ctx.seed)
            boot = np.array([self.scale * (k_ff[np.ix_(i, i)].mean() + k_rr - 2 * k_fr[i].mean()) for i in draws])
            self._interval(values, boot, ctx)
        return values


class PRDC(_FeatureSpaceMetric):
    """Precision, recall, density and coverage with ``k`` nearest neighbours (default 5). Values are reported as
    ``precision``, ``recall``, ``density``, ``coverage`` (prefixed by the metric's name when it is not ``prdc``)."""

    higher_is_better = True

    def __init__(self, *args: Any, k: int = 5, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.k = k
        self.min_images = k + 1

    def headline_keys(self) -> tuple[str, ...]:
        prefix = "" if self.name == "prdc" else f"{self.name}_"
        return tuple(f"{prefix}{k}" for k in ("precision", "recall", "density", "coverage"))

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from prdc import compute_prdc

        fake, real = self._features(ctx)
        with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
            values = compute_prdc(real_features=real, fake_features=fake, nearest_k=self.k)
        self.protocol["k"] = self.k
        prefix = "" if self.name == "prdc" else f"{self.name}_"
        return {f"{prefix}{k}": float(v) for k, v in values.items()}
