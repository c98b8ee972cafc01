"""Style relevance of the CoCosNet protocol: output vs exemplar, in low-level VGG19 space.

CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation",
CVPR 2020, https://github.com/microsoft/CoCosNet) measures how faithfully an output takes the exemplar's
appearance with low-level VGG19 features: ``relu1_2`` for colour and ``relu2_2`` for texture, compared
between semantically corresponding parts of the output and the exemplar by cosine similarity. MIDMs
(Seo et al., AAAI 2023, https://github.com/cvlab-kaist/MIDMs) reports the same two numbers. CoCosNet's
repository ships no metric code; its authors' scripts survive in follow-up repositories, and this module
follows them (the rules are stated in :attr:`StyleRelevance.protocol` and recorded in ``results.json``):

``style_color`` / ``style_texture`` (class-region: AiArt-Gao/MATEBIT ``evaluation/ref_vgg_metric.py``)
    each feature map up-sampled to the image size by nearest neighbour; the classes are those above 0
    present in both the output's label map (the input's, ``labels``) and the exemplar's
    (``exemplar_labels``): label 0 (CelebA-HQ's background, ADE20K's "unknown") never counts; per class the
    cosine similarity of the two regions' mean feature vectors (each over its own map's region); the
    per-image value is their mean weighted by the class's pixel count in the output, normalised over the
    shared classes. An image with no shared class scores 0 and counts in the mean, as in the script (the
    number of such images is in ``protocol``). Without label maps the whole image is one region and
    ``protocol["regions"]`` says ``"whole-image"``.
``style_global_mean`` / ``style_global_var`` / ``style_global`` (whole-image: fnzhan/UNITE
``util/vgg_style_relevance.py``)
    cosine similarity of the channel-wise spatial mean, and of the channel-wise spatial variance (unbiased,
    torch's default, as the script), of the ``relu1_2`` maps of output and exemplar, and (this suite's
    summary) the average of the two. It needs no label maps, so it is reported for every dataset; it is
    UNITE's variant, named apart from the class-region numbers the papers report.

Every reported value is the mean over images of the per-image values. Higher is better.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.errors import MetricSkipped
from midms.metrics.base import EvalBatch, EvalContext
from midms.metrics.semantic import VGGMetric, class_region_cosine, one_region, resize_labels

log = logging.getLogger(__name__)

NO_LABELS = (
    "the dataset has no region labels for output and exemplar (set regions: whole-image for the whole-image "
    "variant only)"
)


class StyleRelevance(VGGMetric):
    """Style relevance (CoCosNet, CVPR 2020): colour and texture similarity of output and exemplar.

    Config::

        style:
          _target_: midms.metrics.style.StyleRelevance
          weights: torchvision        # or the path of CoCosNet's vgg19_conv.pth
          color_layer: relu1_2
          texture_layer: relu2_2
          global_layer: relu1_2
          regions: auto               # auto | labels | whole-image
          batch_size: 16

    Reports ``<name>_color``, ``<name>_texture``, ``<name>_global_mean``, ``<name>_global_var`` and
    ``<name>_global``; ``name`` defaults to ``style``.
    """

    higher_is_better = True

    def __init__(
        self,
        weights: str | Path | None = "torchvision",
        color_layer: str = "relu1_2",
        texture_layer: str = "relu2_2",
        global_layer: str = "relu1_2",
        regions: str = "auto",
        batch_size: int = 16,
        name: str = "style",
        extractor: nn.Module | None = None,
        network: Mapping[str, Any] | None = None,
    ) -> None:
        layers = (color_layer, texture_layer, global_layer)
        super().__init__(name, layers, weights, regions, batch_size, extractor, network)
        self.color_layer, self.texture_layer, self.global_layer = color_layer, texture_layer, global_layer

    def headline_keys(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{part}" for part in ("color", "texture", "global"))

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self._without_shared = 0
        self._update_protocol()

    def check_batch(self, batch: EvalBatch) -> None:
        if batch.exemplar is None:
            raise MetricSkipped("no exemplar images were given (midms-eval: pass --exemplars DIR)")
        if self.regions == "labels" and (batch.labels is None or batch.exemplar_labels is None):
            raise MetricSkipped(NO_LABELS)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        fake, exemplar = self.features(batch.fake), self.features(batch.exemplar)
        labels, ex_labels, ignore = self._label_maps(batch)
        values: dict[str, Tensor] = {}
        for key, layer in (("color", self.color_layer), ("texture", self.texture_layer)):
            value = class_region_cosine(fake[layer], exemplar[layer], labels, ex_labels, ignore_label=ignore)
            if key == "color":
                self._without_shared += int(torch.isnan(value).sum())
            values[f"{self.name}_{key}"] = torch.nan_to_num(value, nan=0.0)  # no shared class: 0, and it counts
        g_fake, g_ex = fake[self.global_layer].float().flatten(2), exemplar[self.global_layer].float().flatten(2)
        mean_cos = F.cosine_similarity(g_fake.mean(-1), g_ex.mean(-1), dim=-1, eps=1e-6)  # CosineSimilarity(eps=1e-6)
        var_cos = F.cosine_similarity(g_fake.var(-1), g_ex.var(-1), dim=-1, eps=1e-6)
        values[f"{self.name}_global_mean"] = mean_cos
        values[f"{self.name}_global_var"] = var_cos
        values[f"{self.name}_global"] = (mean_cos + var_cos) / 2
        return self._record(values)

    def _label_maps(self, batch: EvalBatch) -> tuple[Tensor, Tensor, int | None]:
        """Label maps of output (the input's) and exemplar at their image sizes, and the class left out (0, as
        the script); without label maps, one region each and nothing left out."""
        if batch.labels is None or batch.exemplar_labels is None or self.regions == "whole-image":
            self._region_modes.add("whole-image")
            return one_region(batch.fake), one_region(batch.exemplar), None
        self._region_modes.add("labels")
        device = batch.fake.device
        return (
            resize_labels(batch.labels.to(device), tuple(batch.fake.shape[-2:])),
            resize_labels(batch.exemplar_labels.to(device), tuple(batch.exemplar.shape[-2:])),
            0,
        )

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        means = self._means()
        if not means:
            raise MetricSkipped("no images were evaluated")
        if self._without_shared:
            log.warning(
                "%s: %d image(s) share no class above 0 with their exemplar; they score 0 (as the script)",
                self.name,
                self._without_shared,
            )
        self._update_protocol()
        return {key: value for key, (value, _) in means.items()}

    def _update_protocol(self) -> None:
        self.protocol = {
            "weights": self.weights_id,
            "layers": {"color": self.color_layer, "texture": self.texture_layer, "global": self.global_layer},
            "compared": "output vs exemplar",
            "regions": self._region_mode() if self._region_modes else self.regions,
            "per_image": (
                "color/texture: cosine of class-region mean features (nearest-upsampled to the image size) for "
                "the classes above 0 present in both label maps, weighted by the class's pixel count in the "
                "output; 0 for an image without such a class (MATEBIT evaluation/ref_vgg_metric.py); global: "
                "cosine of channel-wise mean and of channel-wise (unbiased) variance, and their average (UNITE "
                "util/vgg_style_relevance.py)"
            ),
            "aggregation": "mean over images of the per-image values",
            "images_without_shared_classes": self._without_shared,
            **self._network_protocol(),
        }
