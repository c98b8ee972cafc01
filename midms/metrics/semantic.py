"""Semantic consistency of the CoCosNet protocol: output vs the real photo of the same input, in VGG19 space.

CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation",
CVPR 2020, https://github.com/microsoft/CoCosNet) measures how well an output keeps the input's semantics
with the high-level VGG19 features ``relu3_2``, ``relu4_2`` and ``relu5_2`` of the output and of the real
image the input was made from: a cosine similarity per layer, averaged over the layers. MIDMs (Seo et al.,
AAAI 2023, https://github.com/cvlab-kaist/MIDMs) reports the same number. CoCosNet's repository ships no
metric code; its authors' script survives in follow-up repositories, identical in both: fnzhan/UNITE
``util/sc_vgg_metric.py`` and AiArt-Gao/MATEBIT ``evaluation/sc_vgg_metric.py``. This module follows it
(the rules are stated in :attr:`SemanticConsistency.protocol` and recorded in ``results.json``):

- each feature map is up-sampled to the image size by **nearest** neighbour; for every class of the real
  image's label map (the input's; label 0 included) the mean feature vector of that region is taken in
  both images and the two are compared by cosine similarity; the per-image value is the mean over classes
  weighted by the class's pixel share;
- without region labels the whole image is one region (cosine of the spatially averaged features), and
  ``protocol["regions"]`` says ``"whole-image"``;
- the reported value is the mean over images of the per-image values, per layer
  (``semantic_relu3_2`` ...) and averaged over the layers (``semantic``).

This module also holds the region pooling shared with :mod:`midms.metrics.style`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.errors import MetricSkipped, UserError
from midms.metrics.base import EvalBatch, EvalContext, Metric
from midms.nn.domain_vgg import DOMAIN
from midms.nn.vgg import VGG19Features, WeightsUnavailable

log = logging.getLogger(__name__)

REGION_MODES = ("auto", "labels", "whole-image")
#: the widths of the domain network of ``weights: domain`` (wider than the tiny loss networks: it sees colour better)
DOMAIN_METRIC_WIDTHS = (8, 16, 32, 64, 64)
NO_LABELS = "the dataset has no region labels (set regions: whole-image to compare whole images)"


# -- region pooling ---------------------------------------------------------------------------------


def upsample_matrix(
    n_in: int, n_out: int, device: torch.device | None = None, dtype=torch.float32, mode: str = "bilinear"
) -> Tensor:
    """The n_out×n_in matrix of 1-D resizing as ``F.interpolate`` (``nearest``, or ``bilinear``: linear with
    ``align_corners=False``). Both 2-D resizings are separable, so ``up(f) = U_h f U_w^T`` with one matrix per axis.
    """
    eye = torch.eye(n_in, device=device, dtype=dtype).unsqueeze(1)  # n_in signals of length n_in
    kwargs = {"mode": "nearest"} if mode == "nearest" else {"mode": "linear", "align_corners": False}
    return F.interpolate(eye, size=n_out, **kwargs).squeeze(1).T


def label_masks(labels: Tensor, classes: Tensor) -> Tensor:
    """B×H×W integer labels -> B×K×H×W float masks, one per entry of ``classes`` (negative labels: no class)."""
    return (labels.unsqueeze(1) == classes.view(1, -1, 1, 1)).float()


def resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of B×H×W labels to ``size`` (a no-op when it already matches)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def region_means(features: Tensor, masks: Tensor, upsample: str = "nearest") -> Tensor:
    """Mean feature vector of each region, after resizing the features to the masks' size.

    Args:
        features: B×C×h×w feature maps.
        masks: B×K×H×W region masks (0/1) at image resolution.
        upsample: how the features are resized: ``nearest`` (the metric scripts) or ``bilinear``.

    Returns:
        B×K×C means; an empty region gives a zero vector. The resize is never materialised: the masks are
        pulled back to the feature grid with the transposed resize matrices (exact, and C×H×W memory free).
    """
    b, c, h, w = features.shape
    big_h, big_w = masks.shape[-2:]
    features = features.float()
    if (h, w) == (big_h, big_w):
        pulled = masks
    else:
        u_h = upsample_matrix(h, big_h, features.device, mode=upsample)  # H×h
        u_w = upsample_matrix(w, big_w, features.device, mode=upsample)  # W×w
        pulled = torch.einsum("yi,bkyx,xj->bkij", u_h, masks, u_w)  # B×K×h×w
    sums = torch.einsum("bkij,bcij->bkc", pulled, features)
    counts = masks.sum(dim=(-2, -1)).clamp_min(1.0)
    return sums / counts.unsqueeze(-1)


def weighted_cosine(a: Tensor, b: Tensor, weights: Tensor) -> Tensor:
    """Per-image weighted mean over regions of cos(a_k, b_k): B×K×C, B×K×C, B×K -> B (NaN if no weight)."""
    cos = F.cosine_similarity(a, b, dim=-1, eps=1e-8)
    total = weights.sum(dim=-1)
    value = (weights * cos).sum(dim=-1) / total.clamp_min(1e-12)
    return torch.where(total > 0, value, torch.full_like(value, float("nan")))


def class_region_cosine(
    features_a: Tensor,
    features_b: Tensor,
    labels_a: Tensor,
    labels_b: Tensor,
    ignore_label: int | None = None,
    upsample: str = "nearest",
) -> Tensor:
    """Per image, the class-region cosine similarity of two feature maps, weighted by class area in ``a``.

    Args:
        features_a, features_b: B×C×h×w feature maps of the two images (any resolution; resized to their
            label maps' size by ``upsample``).
        labels_a, labels_b: B×H×W label maps of the two images (negative = no class). A map of zeros makes
            the whole image one region.
        ignore_label: a class left out (the style script's ``c > 0``), or None.

    Returns:
        B values: Σ_k w_k cos(mean_a(k), mean_b(k)) / Σ_k w_k over the classes k present in both maps, with
        w_k the pixel count of k in ``labels_a`` and each mean over its own map's region; NaN for an image
        without a shared class. Images are done one at a time so that only their own classes take memory.
    """
    out = []
    for i in range(features_a.shape[0]):
        la, lb = labels_a[i : i + 1], labels_b[i : i + 1]
        classes = torch.unique(la)
        classes = classes[(classes >= 0) & (classes != (-1 if ignore_label is None else ignore_label))]
        masks_a, masks_b = label_masks(la, classes), label_masks(lb, classes)
        weights = masks_a.sum(dim=(-2, -1)) * (masks_b.sum(dim=(-2, -1)) > 0)
        means_a = region_means(features_a[i : i + 1], masks_a, upsample)
        means_b = region_means(features_b[i : i + 1], masks_b, upsample)
        out.append(weighted_cosine(means_a, means_b, weights))
    return torch.cat(out)


def one_region(images: Tensor) -> Tensor:
    """A label map that makes each whole image one region."""
    return torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.long, device=images.device)


# -- shared VGG metric plumbing ---------------------------------------------------------------------


class VGGMetric(Metric):
    """A metric on VGG19 features: builds the extractor in :meth:`setup`, skips when weights are absent.

    ``weights``: ``torchvision``, the path of a VGG19 state dict (CoCosNet's ``vgg19_conv.pth``), the folder of a
    trained domain network (:mod:`midms.nn.domain_vgg`: ``weights.safetensors`` + ``network.json``), or ``domain``:
    a domain network of ``network``'s widths and training, trained on the run's synthetic training split (resolved
    to its folder by :meth:`resolve_domain_network`; skipped where the data cannot teach one). A domain network's
    values are not the papers' Caffe-VGG ones: the protocol names the network, and the presets report them under
    their own names (``semantic_domain``, ``style_domain``).

    ``extractor`` (not a config value) injects a ready feature extractor for tests: any module mapping
    B×3×H×W images in [0, 1] to ``{layer: B×C×h×w}`` for this metric's layers.
    """

    def __init__(
        self,
        name: str,
        layers: Sequence[str],
        weights: str | Path | None,
        regions: str,
        batch_size: int,
        extractor: nn.Module | None,
        network: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name)
        if regions not in REGION_MODES:
            raise UserError(f"{name}: regions must be one of {REGION_MODES}, got {regions!r}")
        if weights is None and extractor is None:
            raise UserError(
                f"{name}: weights must be 'torchvision' or the path of a VGG19 state dict (CoCosNet's "
                "vgg19_conv.pth); random weights would give meaningless numbers."
            )
        if batch_size < 1:
            raise UserError(f"{name}: batch_size must be positive, got {batch_size}")
        self.layers = tuple(dict.fromkeys(layers))  # unique, in order
        self.weights = weights
        network = dict(network or {})
        self.network_widths = list(network.pop("widths", DOMAIN_METRIC_WIDTHS))
        self.network_training = network  # the fields of midms.nn.domain_vgg.DomainTraining
        self.regions = regions
        self.batch_size = batch_size
        self._injected = extractor
        self.extractor: nn.Module | None = None

    def resolve_domain_network(self, dataset_cfg, cache_dir: str | Path) -> None:
        """``weights: domain``: train (or read from ``cache_dir``) the domain network on the training split of
        ``dataset_cfg`` and use its folder; left unresolved (the metric is then skipped) when that data knows no
        pixel's appearance."""
        if self.weights != DOMAIN:
            return
        from midms.nn.domain_vgg import metric_network

        folder = metric_network(dataset_cfg, cache_dir, self.network_widths, self.network_training)
        if folder is not None:
            self.weights = str(folder)

    def _extractor(self) -> nn.Module:
        if self.weights == DOMAIN:
            raise MetricSkipped(
                "weights=domain: the domain network is trained on a synthetic training split (run.py with "
                "dataset=synthetic trains it); here there is none. Give the folder of a trained one instead "
                "(weights=<cache_dir>/loss_networks/<key>)."
            )
        if Path(str(self.weights)).expanduser().is_dir():
            from midms.nn.domain_vgg import feature_network

            return feature_network(self.weights, self.layers)
        try:
            return VGG19Features(self.layers, weights=self.weights)
        except WeightsUnavailable as e:
            raise MetricSkipped(str(e)) from e

    def _network_protocol(self) -> dict[str, Any]:
        """Where the features come from, for the protocol: a domain network is named as what it is."""
        if not self.weights_id.startswith(f"{DOMAIN}:"):
            return {}
        return {
            "network": (
                f"a VGG19 of widths {self.network_widths} trained on the synthetic training split "
                f"(midms.nn.domain_vgg, {self.weights}), not the papers' Caffe VGG19: not comparable with them"
            )
        }

    def setup(self, ctx: EvalContext) -> None:
        extractor = self._injected if self._injected is not None else self._extractor()
        self.extractor = extractor.to(ctx.device).eval()
        self.weights_id = str(getattr(extractor, "weights_id", type(extractor).__name__))
        log.info("%s: VGG19 features %s from %s", self.name, list(self.layers), self.weights_id)
        self._values: dict[str, list[Tensor]] = {}
        self._region_modes: set[str] = set()

    @torch.no_grad()
    def features(self, images: Tensor) -> dict[str, Tensor]:
        """Features of B×3×H×W images in [0, 1], computed ``batch_size`` images at a time."""
        assert self.extractor is not None, "setup() was not called"
        parts = [self.extractor(images[i : i + self.batch_size]) for i in range(0, images.shape[0], self.batch_size)]
        return {layer: torch.cat([p[layer] for p in parts]) for layer in self.layers}

    def _record(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        for key, v in values.items():
            self._values.setdefault(key, []).append(v.detach().double().cpu())
        return values

    def _region_mode(self) -> str:
        modes = self._region_modes
        return next(iter(modes)) if len(modes) == 1 else ("mixed" if modes else "none")

    def _means(self) -> dict[str, tuple[float, int]]:
        """Mean over images of every recorded value, ignoring NaN; with the number of NaN images."""
        out = {}
        for key, parts in self._values.items():
            v = torch.cat(parts)
            ok = ~torch.isnan(v)
            out[key] = (float(v[ok].mean()) if ok.any() else float("nan"), int((~ok).sum()))
        return out


class SemanticConsistency(VGGMetric):
    """Semantic consistency (CoCosNet, CVPR 2020): output vs the real image of the same input. Higher is better.

    Config::

        semantic:
          _target_: midms.metrics.semantic.SemanticConsistency
          weights: torchvision        # or the path of CoCosNet's vgg19_conv.pth
          layers: [relu3_2, relu4_2, relu5_2]
          regions: auto               # auto | labels | whole-image
          batch_size: 16

    Reports ``<name>_<layer>`` per layer and ``<name>`` (their mean); ``name`` defaults to ``semantic``.
    """

    higher_is_better = True

    def __init__(
        self,
        weights: str | Path | None = "torchvision",
        layers: Sequence[str] = ("relu3_2", "relu4_2", "relu5_2"),
        regions: str = "auto",
        batch_size: int = 16,
        name: str = "semantic",
        extractor: nn.Module | None = None,
        network: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, layers, weights, regions, batch_size, extractor, network)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self._update_protocol()

    def check_batch(self, batch: EvalBatch) -> None:
        if self.regions == "labels" and batch.labels is None:
            raise MetricSkipped(NO_LABELS)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        if batch.labels is not None and self.regions != "whole-image":
            labels = resize_labels(batch.labels.to(batch.fake.device), tuple(batch.fake.shape[-2:]))
            self._region_modes.add("labels")
        else:
            labels = one_region(batch.fake)
            self._region_modes.add("whole-image")
        fake, real = self.features(batch.fake), self.features(batch.image)
        values: dict[str, Tensor] = {}
        for layer in self.layers:  # the real image shares the input's label map
            values[f"{self.name}_{layer}"] = class_region_cosine(fake[layer], real[layer], labels, labels)
        values[self.name] = torch.stack(list(values.values())).mean(dim=0)
        return self._record(values)

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        means = self._means()
        if not means:
            raise MetricSkipped("no images were evaluated")
        self._update_protocol()
        return {key: value for key, (value, _) in means.items()}

    def _update_protocol(self) -> None:
        self.protocol = {
            "weights": self.weights_id,
            "layers": list(self.layers),
            "compared": "output vs the real image of the same input",
            "regions": self._region_mode() if self._region_modes else self.regions,
            "features": "nearest-upsampled to the image size; mean feature vector per class region",
            "per_image": "area-weighted mean over the input's classes (label 0 included) of the cosine similarity",
            "script": "UNITE util/sc_vgg_metric.py = MATEBIT evaluation/sc_vgg_metric.py",
            "aggregation": f"mean over images per layer; {self.name} = mean over layers",
            **self._network_protocol(),
        }
