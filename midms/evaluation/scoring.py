"""Stage two of an evaluation: score a folder (:mod:`midms.evaluation.folder`) and return one :class:`Scores`.

The one scoring function of the suite: the runner, ``midms-eval``, the metric check and a sharded (DDP)
evaluation all call :func:`score_folder`. It reads each image of the folder once, in the batches the folder's
``pairs.csv`` names (the batches translation used, so every number equals one measured on the fly), feeds
them to every metric, and lets the folder-level metrics (FID, KID, SWD, the feature panel) share their feature
passes through the context's :class:`~midms.metrics.base.SharedFeatures`. A metric that cannot run is skipped
with its reason; one that crashes is reported under ``errors`` and the others still count.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from midms import interrupt
from midms.evaluation import folder as layout
from midms.evaluation.images import image_grid
from midms.evaluation.metric_set import MetricSet
from midms.imageio import array_to_tensor
from midms.metrics.base import EvalBatch, EvalContext, Metric, ValueInfo
from midms.metrics.folders import list_images

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """What one scoring measured: the record, the tables and W&B read it (through :class:`~midms.RunRecord`)."""

    metrics: dict[str, float] = field(default_factory=dict)  # value key -> value
    info: dict[str, ValueInfo] = field(default_factory=dict)  # value key -> direction, headline, stable minimum
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    errors: dict[str, str] = field(default_factory=dict)  # metric -> the error it raised
    protocol: dict[str, Any] = field(default_factory=dict)  # "<metric>.<field>" -> how it was computed
    per_image: pd.DataFrame = field(default_factory=pd.DataFrame)  # name, id, exemplar_id, per-image values
    num_images: int = 0
    seconds: float = 0.0  # the scoring's
    translation_seconds: float = 0.0  # the translation's (set by midms.evaluation.evaluator.evaluate)
    grid: np.ndarray | None = None  # input | exemplar | output | target (or real photo), H×W×3 uint8
    folder: layout.FolderInfo | None = None  # the reference folder and its fingerprint
    skipped_pairs: list[dict[str, str]] = field(default_factory=list)  # unreadable pairs: id, exemplar_id, reason

    @property
    def directions(self) -> dict[str, str]:
        return {key: info.direction for key, info in self.info.items()}


class _Files:
    """Name -> file of one folder of the evaluation folder (None when the folder does not exist)."""

    def __init__(self, folder: Path) -> None:
        self.files = list_images(folder) if folder.is_dir() and any(folder.iterdir()) else None

    def __bool__(self) -> bool:
        return self.files is not None

    def path(self, name: str, input_id: str) -> Path:
        """The file of ``name``, or of its input (real photos and input labels are kept once per input)."""
        assert self.files is not None
        return self.files[name] if name in self.files else self.files[input_id]


def _images(
    ctx: EvalContext, files: _Files, names: list[str], ids: list[str], size: int, device: torch.device
) -> Tensor | None:
    """Float [0, 1] B×3×H×W images of ``names``, each file decoded once per scoring (``ctx.features``)."""
    if not files:
        return None
    paths = [files.path(n, i) for n, i in zip(names, ids, strict=True)]
    stack = torch.stack([array_to_tensor(ctx.features.image(p), size) for p in paths])
    return (stack.float() / 255.0).to(device)


def _labels(files: _Files, names: list[str], ids: list[str], size: int | None) -> Tensor | None:
    if not files:
        return None
    return torch.stack([layout.load_label_map(files.path(n, i), size) for n, i in zip(names, ids, strict=True)])


def _batches(pairs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in pairs:
        groups.setdefault(row["batch"], []).append(row)
    return [groups[b] for b in sorted(groups)]


def _grid(ctx: EvalContext, run_dir: Path, names: list[str], ids: list[str], rows: int) -> np.ndarray | None:
    """The sample grid of the first ``rows`` pairs from the folder: input | exemplar | output | target (or photo)."""
    reference, size = Path(ctx.reference_dir), ctx.image_size
    inputs = _Files(run_dir / layout.EVAL / "inputs")
    shown = [(n, i) for n, i in zip(names, ids, strict=True) if inputs and n in inputs.files][:rows]
    if not shown:
        return None
    last = "target" if _Files(reference / "target") else "image"
    folders = [inputs, _Files(reference / "exemplar"), _Files(run_dir / layout.SAMPLES), _Files(reference / last)]
    columns = []
    for files in folders:
        if not files:
            return None
        columns.append(torch.stack([array_to_tensor(ctx.features.image(files.path(n, i)), size) for n, i in shown]))
    return image_grid(columns, rows)


def score_folder(
    run_dir: str | Path,
    metrics: dict[str, Metric],
    cache_dir: str | Path,
    device: str | torch.device = "cpu",
    seed: int = 0,
    grid_rows: int = 8,
) -> Scores:
    """Score the evaluation folder ``run_dir`` (``samples/`` and ``eval/``) with ``metrics``.

    Example::

        from midms import score_folder
        from midms.metrics.pixel import PSNR
        scores = score_folder("outputs/2026-12-07/10-00-00", {"psnr": PSNR()}, cache_dir=".cache/midms")
        print(scores.metrics["psnr"], scores.info["psnr"].direction)
    """
    start = time.perf_counter()
    run_dir, device = Path(run_dir), torch.device(device)
    eval_dir = run_dir / layout.EVAL
    info = layout.FolderInfo.read(eval_dir)
    reference = Path(info.reference_dir)
    pairs = layout.read_pairs(eval_dir)
    ctx = EvalContext(
        samples_dir=run_dir / layout.SAMPLES,
        reference_dir=reference,
        cache_dir=Path(cache_dir),
        dataset_key=info.dataset_key,
        image_size=info.image_size,
        image_format=info.image_format,
        num_images=len(pairs),
        device=device,
        seed=seed,
    )
    metric_set = MetricSet(metrics)
    metric_set.setup(ctx)
    if any(m.reads_folders for m in metric_set.active.values()):  # they read the outputs and photos again
        ctx.features.keep_images()
    fake, real = _Files(ctx.samples_dir), {kind: _Files(reference / kind) for kind in layout.REFERENCE_KINDS}
    labels = {kind: _Files(eval_dir / kind) for kind in layout.LABEL_KINDS}
    size, rows = info.image_size, []
    label_size = size if info.extra.get("resize_labels") else None  # a run's labels are kept at the dataset's size
    for batch in tqdm(_batches(pairs), desc="score", unit="batch", leave=False):
        interrupt.check("evaluation (resume=true evaluates again)")
        names, ids = [r["name"] for r in batch], [r["id"] for r in batch]
        eval_batch = EvalBatch(
            fake=_images(ctx, fake, names, ids, size, device),
            image=_images(ctx, real["image"], names, ids, size, device),
            exemplar=_images(ctx, real["exemplar"], names, ids, size, device),
            names=names,
            input_ids=ids,
            target=_images(ctx, real["target"], names, ids, size, device),
            labels=_labels(labels["labels"], names, ids, label_size),
            exemplar_labels=_labels(labels["exemplar_labels"], names, ids, label_size),
            warped_labels=_labels(labels["warped_labels"], names, ids, label_size),
        )
        per_image = metric_set.update(eval_batch)
        for i, row in enumerate(batch):
            values = {k: float(v.reshape(-1)[i]) for k, v in per_image.items()}
            rows.append({"name": row["name"], "id": row["id"], "exemplar_id": row["exemplar_id"], **values})
    skipped_file = eval_dir / layout.SKIPPED_FILE
    metrics_values = metric_set.compute(ctx)
    return Scores(
        metrics=metrics_values,
        info=dict(metric_set.info),
        skipped=metric_set.skipped,
        errors=metric_set.errors,
        protocol=metric_set.protocol,
        per_image=pd.DataFrame(rows),
        num_images=len(rows),
        seconds=time.perf_counter() - start,
        grid=_grid(ctx, run_dir, [r["name"] for r in pairs], [r["id"] for r in pairs], grid_rows),
        folder=info,
        skipped_pairs=json.loads(skipped_file.read_text()) if skipped_file.exists() else [],
    )
