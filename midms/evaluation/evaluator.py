"""The one evaluator for every method (DESIGN.md, "The evaluation protocol").

Translate every evaluation pair, save the outputs under ``<run dir>/samples/<name>.<format>``, keep the
real-side images of the split once per dataset in a shared reference folder, then compute each
configured metric on exactly the 8-bit images that were saved. A metric that cannot run is reported as
skipped with its reason; one that crashes is reported under ``metric_errors`` and the others still count.

Under DDP (``shard=(rank, world)``) every process translates its share of the batches (batch ``b`` goes to
rank ``b % world``, so batches are composed as in one process) and writes its samples (and, for metrics that
need it, the warped exemplar labels); after a barrier rank zero scores the complete folder, reading the outputs
back exactly as one process would have measured them. The other ranks return None.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from midms import interrupt
from midms.errors import UserError
from midms.evaluation.images import decode, image_grid, save_images, semantics_to_rgb, to_uint8
from midms.evaluation.metric_set import MetricSet
from midms.metrics.base import EvalBatch, EvalContext, Metric, sample_name
from midms.models.base import TranslationModel
from midms.processes import process_gone

log = logging.getLogger(__name__)
REFERENCE_KINDS = ("image", "exemplar", "target")


@dataclass
class EvalOutcome:
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    metric_errors: dict[str, str] = field(default_factory=dict)
    metric_protocol: dict[str, Any] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    per_image: pd.DataFrame = field(default_factory=pd.DataFrame)
    grid: np.ndarray | None = None
    num_images: int = 0
    seconds: float = 0.0
    reference_dir: Path | None = None  # the content-keyed folder of the split's real-side images
    reference_fingerprint: str | None = None  # SHA-256 (16 hex digits) of those images as evaluated
    skipped_pairs: list[dict[str, str]] = field(default_factory=list)  # unreadable pairs: id, exemplar, reason


def sample_names(ids: list[str], exemplar_ids: list[str], seen: set[str]) -> list[str]:
    """File stems: the input id, or ``<id>__<exemplar_id>`` when an input is evaluated with several exemplars.

    A pair met twice would overwrite a sample and count twice in the metrics: it is an error."""
    names = []
    for i, e in zip(ids, exemplar_ids, strict=True):
        name = sample_name(i) if i not in seen else sample_name(i, e)
        if name in seen:
            raise ValueError(
                f"the evaluation pair ({i}, exemplar {e}) occurs twice: every pair must be evaluated once "
                f"(check the dataset's ids and its pairing list)"
            )
        seen.add(name)
        names.append(name)
    return names


class _ReferenceWriter:
    """Writes the split's real-side images, keyed by their content: ``<root>/<dataset key>-<fingerprint>/``.

    The fingerprint is a SHA-256 of every reference image as evaluated (8-bit pixels, kind and name), so a
    changed or damaged copy of a dataset gets its own folder (and its own FID statistics, which are keyed by
    the folder's key) instead of meeting a stale cache. The images go to a private temporary folder during the
    pass; a finished folder with the same key is reused, and concurrent jobs race harmlessly.
    """

    def __init__(self, root: Path, dataset_key: str) -> None:
        self.root, self.dataset_key = root, dataset_key
        self.tmp = root / f".{dataset_key}.{socket.gethostname()}.{os.getpid()}.tmp"
        self.digest = hashlib.sha256()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Temporary folders of killed evaluations (their process on this host has ended) are removed; another
        host's are left to it (its process cannot be checked from here)."""
        for folder in self.root.glob(f".{glob.escape(self.dataset_key)}.*.tmp"):
            host, _, pid = folder.name[len(self.dataset_key) + 2 : -len(".tmp")].rpartition(".")
            if pid.isdigit() and process_gone(host, int(pid)):
                log.info("removing %s: left by an evaluation that was killed", folder)
                shutil.rmtree(folder, ignore_errors=True)

    def add(self, kind: str, images: Tensor, names: list[str]) -> None:
        for image, name in zip(images, names, strict=True):
            self.digest.update(f"{kind}/{name}:{tuple(image.shape)}\n".encode())
            self.digest.update(image.contiguous().numpy().tobytes())
        save_images(images, names, self.tmp / kind, "png")

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self) -> tuple[Path, str]:
        """Move the images into place (or reuse an identical finished folder); ``(folder, fingerprint)``."""
        fingerprint = self.digest.hexdigest()[:16]
        final = self.root / f"{self.dataset_key}-{fingerprint}"
        if (final / ".complete").exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
            return final, fingerprint
        (self.tmp / ".complete").touch()
        try:
            os.rename(self.tmp, final)
        except OSError:  # another job finished first, or an incomplete folder is in the way
            if (final / ".complete").exists():
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(self.tmp, final)
        return final, fingerprint


class NonFiniteOutput(UserError):
    """A model translated a pair to NaN or infinite values: no metric may score such an output."""


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _unit(x: Tensor) -> Tensor:
    return x.float() / 255.0


def _translate(model: TranslationModel, batch: dict, needs_warp: bool) -> tuple[Tensor, Tensor | None]:
    """The outputs, and the exemplar's one-hot labels warped onto the input when a metric needs them."""
    with torch.no_grad():
        fake = model.translate(batch)
        finite = torch.isfinite(fake).flatten(1).all(dim=1)
        if not finite.all():
            ids = [str(i) for i, ok in zip(batch["id"], finite.tolist(), strict=True) if not ok]
            raise NonFiniteOutput(
                f"{type(model).__name__} translated {len(ids)} of {len(finite)} pairs of a batch to NaN or infinite "
                f"values (inputs {', '.join(ids[:5])}): nothing is scored. The model's weights are probably not "
                f"finite (a diverged training run, or a corrupt checkpoint); retrain it or load another checkpoint."
            )
        warped = None
        if needs_warp and model.can_warp and "exemplar_labels" in batch and model.data_spec.num_classes:
            onehot = F.one_hot(batch["exemplar_labels"], model.data_spec.num_classes).permute(0, 3, 1, 2)
            warped = model.warp(batch, onehot.float())
    return fake, warped


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _translate_shard(
    model: TranslationModel, dataloader, ctx: EvalContext, shard: tuple[int, int], needs_warp: bool, warp_dir: Path
) -> None:
    """This rank's batches: translated, saved as samples, warped labels kept in ``warp_dir`` by batch index."""
    rank, world = shard
    seen: set[str] = set()
    for index, batch in enumerate(tqdm(dataloader, desc=f"translate (rank {rank} of {world})", unit="batch")):
        batch.pop("skipped_pairs", None)
        if "id" not in batch:
            continue
        names = sample_names(list(batch["id"]), list(batch["exemplar_id"]), seen)  # every rank: the same names
        if index % world != rank:
            continue
        fake, warped = _translate(model, _to_device(batch, ctx.device), needs_warp)
        save_images(to_uint8(fake).cpu(), names, ctx.samples_dir, ctx.image_format)
        if warped is not None:
            torch.save(warped.cpu(), warp_dir / f"{index:06d}.pt")


def _measure(
    model: TranslationModel,
    dataloader,
    ctx: EvalContext,
    metric_set: MetricSet,
    reference: _ReferenceWriter,
    world: int,
    warp_dir: Path,
    grid_rows: int,
) -> tuple[list[dict[str, Any]], list[list[Tensor]], list[Any]]:
    """Every batch translated (or read back, when ranks translated it), saved, and measured: the per-image rows,
    the sample grid's columns and the pairs skipped as unreadable."""
    needs_warp = metric_set.needs_warp  # of the metrics that will run
    rows: list[dict[str, Any]] = []
    grid_columns: list[list[Tensor]] = []
    seen: set[str] = set()
    skipped_pairs: list[Any] = []
    desc = "translate + measure" if world == 1 else "measure"
    for index, batch in enumerate(tqdm(dataloader, desc=desc, unit="batch", leave=False)):
        interrupt.check("evaluation (resume=true evaluates again)")
        skipped_pairs += batch.pop("skipped_pairs", [])
        if "id" not in batch:  # every pair of this batch was unreadable
            continue
        batch = _to_device(batch, ctx.device)
        names = sample_names(list(batch["id"]), list(batch["exemplar_id"]), seen)
        if world == 1:
            fake, warped = _translate(model, batch, needs_warp)
            fake_u8 = save_images(to_uint8(fake).cpu(), names, ctx.samples_dir, ctx.image_format)
        else:  # written by the rank that translated the batch; read back as they were saved
            files = [ctx.samples_dir / f"{name}.{ctx.image_format}" for name in names]
            fake_u8 = torch.stack([decode(path.read_bytes()) for path in files])
            warp_file = warp_dir / f"{index:06d}.pt"
            warped = torch.load(warp_file, weights_only=True).to(ctx.device) if warp_file.exists() else None
        real_u8 = {k: to_uint8(batch[k]).cpu() for k in REFERENCE_KINDS if k in batch}
        for kind, images in real_u8.items():
            # real photos by input id (one file per input, however many exemplars it is evaluated with)
            reference.add(kind, images, list(batch["id"]) if kind == "image" else names)
        eval_batch = EvalBatch(
            fake=_unit(fake_u8).to(ctx.device),
            image=_unit(real_u8["image"]).to(ctx.device),
            exemplar=_unit(real_u8["exemplar"]).to(ctx.device),
            names=names,
            input_ids=list(batch["id"]),
            target=_unit(real_u8["target"]).to(ctx.device) if "target" in real_u8 else None,
            labels=batch.get("labels"),
            exemplar_labels=batch.get("exemplar_labels"),
            warped_exemplar_labels=warped,
        )
        per_image = metric_set.update(eval_batch)
        for i, name in enumerate(names):
            row = {"name": name, "id": batch["id"][i], "exemplar_id": batch["exemplar_id"][i]}
            row.update({k: float(v[i]) for k, v in per_image.items()})
            rows.append(row)
        if sum(c[0].shape[0] for c in grid_columns) < grid_rows:
            cols = [semantics_to_rgb(batch["semantics"].cpu()), real_u8["exemplar"], fake_u8]
            cols.append(real_u8["target"] if "target" in real_u8 else real_u8["image"])
            grid_columns.append(cols)
    return rows, grid_columns, skipped_pairs


def evaluate(
    model: TranslationModel,
    dataloader: torch.utils.data.DataLoader,
    metrics: dict[str, Metric],
    run_dir: str | Path,
    cache_dir: str | Path,
    dataset_key: str,
    image_size: int,
    image_format: str = "png",
    device: str | torch.device = "cpu",
    seed: int = 0,
    grid_rows: int = 8,
    shard: tuple[int, int] = (0, 1),
) -> EvalOutcome | None:
    """Translate, save, measure. Returns values, skipped metrics with reasons and a per-image table (None on the
    ranks other than zero of a sharded evaluation)."""
    start = time.perf_counter()
    device = torch.device(device)
    run_dir = Path(run_dir)
    ctx = EvalContext(
        samples_dir=run_dir / "samples",
        reference_dir=Path(cache_dir) / "reference" / dataset_key,
        cache_dir=Path(cache_dir),
        dataset_key=dataset_key,
        image_size=image_size,
        image_format=image_format,
        device=device,
        seed=seed,
    )
    rank, world = shard
    warp_dir = run_dir / ".warped"  # a sharded evaluation's warped labels, by batch, until rank zero has read them
    if rank == 0:
        for stale in (ctx.samples_dir, warp_dir):  # a re-run must not mix its outputs with an earlier attempt's
            if stale.exists():
                shutil.rmtree(stale)
        if world > 1:
            warp_dir.mkdir(parents=True)
    model = model.to(device).eval()
    if world > 1:
        needs_warp = any(getattr(m, "needs_warp", False) for m in metrics.values())
        _barrier()  # the folders are clean
        _translate_shard(model, dataloader, ctx, shard, needs_warp, warp_dir)
        _barrier()  # every sample is written
        if rank != 0:
            return None
    outcome = EvalOutcome()
    metric_set = MetricSet(metrics)
    metric_set.setup(ctx)

    reference = _ReferenceWriter(Path(cache_dir) / "reference", dataset_key)
    try:
        rows, grid_columns, skipped_pairs = _measure(
            model, dataloader, ctx, metric_set, reference, world, warp_dir, grid_rows
        )
        # from here on the data actually read names the caches: the reference folder and the FID statistics
        ctx.reference_dir, outcome.reference_fingerprint = reference.finish()
    except BaseException:
        reference.discard()  # a failed evaluation (a full disk, a kill) leaves no temporary folder behind
        raise
    ctx.dataset_key = f"{dataset_key}-{outcome.reference_fingerprint}"
    outcome.reference_dir = ctx.reference_dir
    ctx.num_images = len(rows)
    outcome.skipped_pairs = [{"id": p.id, "exemplar_id": p.exemplar_id, "reason": p.reason} for p in skipped_pairs]
    if skipped_pairs:
        log.warning(
            "%d evaluation pair(s) skipped (unreadable files), e.g. %s: the metrics cover %d pairs",
            len(skipped_pairs),
            ", ".join(p.id for p in skipped_pairs[:5]),
            len(rows),
        )
    if warp_dir.exists():
        shutil.rmtree(warp_dir)
    if not rows:
        raise ValueError("the evaluation split is empty: there is nothing to evaluate")

    outcome.metrics = metric_set.compute(ctx)
    outcome.skipped, outcome.metric_errors = metric_set.skipped, metric_set.errors
    outcome.metric_protocol, outcome.directions = metric_set.protocol, metric_set.directions
    outcome.per_image = pd.DataFrame(rows)
    outcome.grid = image_grid([torch.cat(parts) for parts in zip(*grid_columns, strict=True)], grid_rows)
    outcome.num_images = len(rows)
    outcome.seconds = time.perf_counter() - start
    return outcome
