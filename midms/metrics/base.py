"""The metric contract used by the evaluator (and by ``midms-eval`` on folders).

A metric is built from config, told where the evaluation lives (:class:`EvalContext`), fed every batch
of outputs (:class:`EvalBatch`) and asked for its values at the end. A metric that cannot run here
raises :class:`~midms.errors.MetricSkipped` from :meth:`Metric.setup` with the reason; the evaluator
records it under ``skipped`` and never invents a value.

Metrics know nothing of models, the runner or W&B.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from midms.imageio import array_to_tensor, load_image

#: joins the input id and the exemplar id in the name of a sample whose input is evaluated with several exemplars
SAMPLE_NAME_SEPARATOR = "__"


def sample_name(input_id: str, exemplar_id: str | None = None) -> str:
    """The file stem of a sample: the input id, or ``<input id>__<exemplar id>`` for a further exemplar."""
    return input_id if exemplar_id is None else f"{input_id}{SAMPLE_NAME_SEPARATOR}{exemplar_id}"


def input_id_of(name: str) -> str:
    """The input id a sample name was made from (:func:`sample_name` read backwards)."""
    return name.split(SAMPLE_NAME_SEPARATOR, 1)[0]


class SharedFeatures:
    """What the metrics of one scoring share, explicitly: the feature passes of one network (FID and KID read the
    Inception features of both folders once; FD-DINOv2 and PRDC one DINOv2 pass), keyed by what decides the
    features (network identity, folder, resolution), and the decoded images, so that every image is decoded once
    per scoring (kept once :meth:`keep_images` is called, when a metric reads whole folders). It lives as long as
    the :class:`EvalContext` that holds it."""

    def __init__(self) -> None:
        self._entries: dict[Any, Any] = {}
        self._images: dict[str, np.ndarray] | None = None

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self._entries:
            self._entries[key] = compute()
        return self._entries[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._entries

    def keep_images(self) -> None:
        """Keep every decoded image for the rest of the scoring (the folder-level metrics read them again)."""
        if self._images is None:
            self._images = {}

    def image(self, path: str | Path) -> np.ndarray:
        """The file decoded as 8-bit RGB (:func:`midms.imageio.load_image`), H×W×3 uint8 at its own size."""
        key = str(path)
        if self._images is not None and key in self._images:
            return self._images[key]
        array = np.asarray(load_image(path))
        if self._images is not None:
            self._images[key] = array
        return array

    def batches(self, paths: list[Path], batch_size: int, size: int | None = None) -> Iterator[Tensor]:
        """uint8 B×3×H×W batches of ``paths`` in order, brought to ``size`` as :func:`~midms.imageio.
        load_image_tensor` does."""
        for i in range(0, len(paths), batch_size):
            yield torch.stack([array_to_tensor(self.image(p), size) for p in paths[i : i + batch_size]])


@dataclass
class EvalContext:
    """Where an evaluation's files are and what protocol it follows."""

    samples_dir: Path  # generated images, one file per evaluation pair, ``<name>.<image_format>``
    reference_dir: Path  # real-side PNG folders of the split: ``image/``, ``exemplar/``, ``target/``
    cache_dir: Path  # shared across runs (reference statistics, weights)
    dataset_key: str  # identifies dataset, split, size and pairing; part of every cache key
    image_size: int
    image_format: str = "png"
    num_images: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    features: SharedFeatures = field(default_factory=SharedFeatures)  # feature passes shared by the metrics


@dataclass
class EvalBatch:
    """One batch as metrics see it. Images are float in [0, 1], quantised to 8 bits exactly as saved."""

    fake: Tensor  # B×3×H×W, the model's output
    image: Tensor  # B×3×H×W, the real photo the input semantics were made from
    exemplar: Tensor | None  # B×3×H×W; None when scoring folders without exemplars (style metrics skip)
    names: list[str]  # file stems of the saved outputs
    target: Tensor | None = None  # B×3×H×W ground-truth translation, where the dataset has one
    labels: Tensor | None = None  # B×H×W int64 region labels of the input
    exemplar_labels: Tensor | None = None  # B×H×W int64 region labels of the exemplar
    warped_labels: Tensor | None = None  # B×H×W the exemplar's labels carried onto the input by the model's warp
    input_ids: list[str] | None = None  # input id of each output (several outputs share one with several exemplars)


@dataclass(frozen=True)
class ValueInfo:
    """What the record says of one reported value (``results.json``'s ``metric_info[<key>]``): reporting reads
    only this, never a metric's own protocol keys."""

    metric: str  # the metric (config key) that computed it
    direction: str  # "higher" | "lower" is better
    headline: bool  # a column of the summary table
    stable_min_images: int | None = None  # below it the value is flagged (†) in tables
    num_images: int | None = None  # the images it was computed on
    implementation: str | None = None  # what a published number must have used to be comparable (FID's library)
    unit: str = ""  # the plots' axis label: "dB", "×10³", "fraction of pixels"; "" for a unitless score

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Metric(ABC):
    """Base class of every metric. ``name`` is the config key; values are reported as ``eval/<key>``.

    The class declares what tables and the runner need to know; a subclass overrides what differs:
    """

    #: higher is better (True), lower is better (False); used by tables and the objective
    higher_is_better: bool = True
    #: its :meth:`headline_keys` are columns of the summary table (False: recorded, not tabled)
    headline: bool = True
    #: the fewest evaluated images the value is defined on; below it the metric is skipped with that reason
    min_images: int = 1
    #: the fewest images on which the value is stable (e.g. FID's 2048); below it tables flag the value
    stable_min_images: int | None = None
    #: the evaluator computes ``warped_labels`` (the model's matching) only when a metric needs it
    needs_warp: bool = False
    #: reads whole folders in ``compute`` (through ``ctx.features``): the scoring then keeps its decoded images
    reads_folders: bool = False
    #: the unit of its values on the plots' axes ("" for a unitless score)
    unit: str = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__.lower()
        #: how the values were computed (weights, resolution, estimator settings); filled by ``compute``
        self.protocol: dict[str, Any] = {}

    def headline_keys(self) -> tuple[str, ...]:
        """The keys of :meth:`compute`'s values that are summary-table columns (default: the metric's name)."""
        return (self.name,)

    def implementation(self) -> str | None:
        """The implementation a published number must share to be compared with ours (None: any)."""
        return None

    def value_info(self, key: str, num_images: int) -> ValueInfo:
        """The record's entry for one of this metric's values (:class:`ValueInfo`)."""
        return ValueInfo(
            metric=self.name,
            direction="higher" if self.higher_is_better else "lower",
            headline=self.headline and key in self.headline_keys(),
            stable_min_images=self.stable_min_images,
            num_images=num_images,
            implementation=self.implementation(),
            unit=self.unit,
        )

    def setup(self, ctx: EvalContext) -> None:  # noqa: B027 - optional hook
        """Prepare for an evaluation (load weights, reset state); raise ``MetricSkipped`` if it cannot run."""

    def check_batch(self, batch: EvalBatch) -> None:  # noqa: B027 - optional hook
        """Raise ``MetricSkipped`` when the data lack what this metric needs (e.g. no ``target``)."""

    def update(self, batch: EvalBatch) -> dict[str, Tensor] | None:
        """Accumulate one batch; may return per-image values (name -> B-vector) for the per-image table."""
        return None

    @abstractmethod
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        """Final values, keyed by full metric name (e.g. ``{"swd": .., "swd_16": ..}``)."""
