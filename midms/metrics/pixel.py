"""PSNR and SSIM against the ground-truth ``target`` (torchmetrics), where the dataset has one.

Both are the mean over images of the per-image value, on the 8-bit images that were saved, with data
range 1. SSIM uses torchmetrics' defaults (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03). The evaluator
sees every image in one process (rank zero under DDP), so metric states are not synced.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from midms.errors import MetricSkipped
from midms.metrics.base import EvalBatch, EvalContext, Metric

NO_TARGET = "the dataset has no ground-truth target (only the synthetic dataset has one)"


def per_image_psnr(fake: Tensor, target: Tensor) -> Tensor:
    """PSNR (dB) of each image of a batch in [-1, 1] (data range 2; ``fake`` clamped), on float images: the
    quick training-time check (the reported metric, :class:`PSNR`, reads the saved 8-bit images)."""
    mse = ((fake.clamp(-1, 1) - target) ** 2).flatten(1).mean(1) / 4
    return -10 * torch.log10(mse.clamp_min(1e-10))


class _TargetMetric(Metric):
    """A full-reference metric against ``target``, averaged over images."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._metric = self._build()

    def _build(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def setup(self, ctx: EvalContext) -> None:
        self._metric = self._build().to(ctx.device)

    def check_batch(self, batch: EvalBatch) -> None:
        if batch.target is None:
            raise MetricSkipped(NO_TARGET)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        per_image = self._metric(batch.fake, batch.target)
        return {self.name: per_image}

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return {self.name: float(self._metric.compute().mean())}


class PSNR(_TargetMetric):
    unit = "dB"

    def __init__(self, name: str = "psnr") -> None:
        super().__init__(name)

    def _build(self) -> PeakSignalNoiseRatio:
        # dim=(1, 2, 3): one PSNR per image, then their mean (not the PSNR of the pooled MSE)
        return PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="none", sync_on_compute=False)


class SSIM(_TargetMetric):
    def __init__(self, name: str = "ssim") -> None:
        super().__init__(name)

    def _build(self) -> StructuralSimilarityIndexMeasure:
        return StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none", sync_on_compute=False)
