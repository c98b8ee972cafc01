"""Matching accuracy: how often the model's warp carries the right exemplar class onto each input pixel.

Exemplar-based translators built on a correspondence (CoCosNet, Zhang et al., CVPR 2020,
https://github.com/microsoft/CoCosNet; MIDMs, Seo et al., AAAI 2023, https://github.com/cvlab-kaist/MIDMs)
warp the exemplar onto the input. Warping the exemplar's one-hot label map with that correspondence and
comparing the result with the input's own labels measures the correspondence directly: the fraction of
pixels whose warped label (argmax over the K classes) equals the input label.

The evaluator warps the exemplar's one-hot labels (B×K×h×w) for models that warp (``can_warp``) on datasets
with region labels, when a metric asks for it (``needs_warp``), and keeps the argmax over K as a label map
(``EvalBatch.warped_labels``); a warp at a lower resolution than the labels is resized bilinearly to the label
size before the argmax. Pixels with a negative label
are ignored. The value is the mean over images of the per-image accuracy. Higher is better.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from midms.errors import MetricSkipped
from midms.metrics.base import EvalBatch, EvalContext, Metric

NO_LABELS = "the dataset has no region labels for the input and the exemplar"
NO_WARP = "the model does not expose a warp (no warped labels: the model's can_warp is False)"


def warped_label_map(warped: Tensor, size: tuple[int, int]) -> Tensor:
    """The class the warp carries onto each input pixel: argmax over K of ``warped`` (B×K×h×w, the exemplar's
    one-hot labels warped by the model), resized bilinearly to ``size`` first when it is smaller -> B×H×W int64."""
    if tuple(warped.shape[-2:]) != tuple(size):
        warped = F.interpolate(warped.float(), size=size, mode="bilinear", align_corners=False)
    return warped.argmax(dim=1)


def matching_accuracy(warped_labels: Tensor, labels: Tensor) -> Tensor:
    """Per-image fraction of pixels where ``warped_labels`` (B×H×W, :func:`warped_label_map`) equals ``labels``.

    Pixels with a negative label do not count; an image without such pixels gives NaN.
    """
    valid = labels >= 0
    correct = ((warped_labels == labels) & valid).sum(dim=(-2, -1)).double()
    count = valid.sum(dim=(-2, -1)).double()
    return torch.where(count > 0, correct / count.clamp_min(1), torch.full_like(count, float("nan")))


class MatchingAccuracy(Metric):
    """Label-transfer accuracy of the model's exemplar-to-input warp. Higher is better.

    Config::

        matching_accuracy:
          _target_: midms.metrics.matching.MatchingAccuracy
    """

    higher_is_better = True
    #: tells the evaluator to compute ``warped_labels``
    needs_warp = True
    unit = "fraction of pixels"

    def __init__(self, name: str = "matching_accuracy") -> None:
        super().__init__(name)
        self._values: list[Tensor] = []

    def setup(self, ctx: EvalContext) -> None:
        self._values = []

    def check_batch(self, batch: EvalBatch) -> None:
        if batch.labels is None or (batch.warped_labels is None and batch.exemplar_labels is None):
            raise MetricSkipped(NO_LABELS)
        if batch.warped_labels is None:
            raise MetricSkipped(NO_WARP)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        self.check_batch(batch)
        values = matching_accuracy(batch.warped_labels, batch.labels.to(batch.warped_labels.device))
        self._values.append(values.detach().cpu())
        return {self.name: values}

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if not self._values:
            raise MetricSkipped("no images were evaluated")
        values = torch.cat(self._values)
        ok = ~torch.isnan(values)
        if not ok.any():
            raise MetricSkipped("no image has a labelled pixel")
        self.protocol = {
            "compared": "argmax of the warped exemplar one-hot labels vs the input labels",
            "resize": "warp resized bilinearly to the label size before the argmax",
            "aggregation": "mean over images of the per-image pixel accuracy",
            "images_without_labelled_pixels": int((~ok).sum()),
        }
        return {self.name: float(values[ok].mean())}
