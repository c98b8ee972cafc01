"""Stage one of an evaluation: translate every pair and write what a score needs into the run's folder.

Every process of a sharded evaluation (``shard=(rank, world)``) translates its share of the batches (batch ``b``
goes to rank ``b % world``, so batches are composed as in one process) and writes, for those batches, the
outputs, the real side (:class:`~midms.evaluation.folder.ReferenceStore`), the label maps, the warped labels and
its list of pairs; :func:`finish_folder` (rank zero, after a barrier) joins the shares into one folder
(:mod:`midms.evaluation.folder` describes the layout). Matching runs once per batch
(:meth:`~midms.models.base.TranslationModel.translate_and_warp`).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from midms import interrupt
from midms.errors import UserError
from midms.evaluation import folder as layout
from midms.evaluation.images import save_images, semantics_to_rgb, to_uint8
from midms.files import atomic_write_text
from midms.metrics.base import sample_name
from midms.metrics.matching import warped_label_map
from midms.models.base import TranslationModel

log = logging.getLogger(__name__)


class NonFiniteOutput(UserError):
    """A model translated a pair to NaN or infinite values: no metric may score such an output."""


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


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _translate(model: TranslationModel, batch: dict, warp_labels: bool) -> tuple[Tensor, Tensor | None]:
    """The outputs, and the exemplar's labels carried onto the input by the model's warp when asked for."""
    onehot = None
    if warp_labels and model.can_warp and "exemplar_labels" in batch and model.data_spec.num_classes:
        onehot = F.one_hot(batch["exemplar_labels"], model.data_spec.num_classes).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        fake, warped = model.translate_and_warp(batch, onehot)
    finite = torch.isfinite(fake).flatten(1).all(dim=1)
    if not finite.all():
        ids = [str(i) for i, ok in zip(batch["id"], finite.tolist(), strict=True) if not ok]
        raise NonFiniteOutput(
            f"{type(model).__name__} translated {len(ids)} of {len(finite)} pairs of a batch to NaN or infinite "
            f"values (inputs {', '.join(ids[:5])}): nothing is scored. The model's weights are probably not "
            f"finite (a diverged training run, or a corrupt checkpoint); retrain it or load another checkpoint."
        )
    return fake, (None if warped is None else warped_label_map(warped, tuple(batch["labels"].shape[-2:])))


def translate_to_folder(
    model: TranslationModel,
    dataloader: torch.utils.data.DataLoader,
    run_dir: Path,
    reference_root: Path,
    dataset_key: str,
    image_format: str = "png",
    device: torch.device | str = "cpu",
    shard: tuple[int, int] = (0, 1),
    warp_labels: bool = False,
    grid_rows: int = 8,
) -> None:
    """Translate this rank's batches into ``run_dir`` (outputs, real side, labels, warped labels, pairs)."""
    rank, world = shard
    device = torch.device(device)
    eval_dir = Path(run_dir) / layout.EVAL
    samples_dir = Path(run_dir) / layout.SAMPLES
    store = layout.ReferenceStore(reference_root, dataset_key, eval_dir / ".reference", shard=rank)
    model = model.to(device).eval()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    desc = "translate" if world == 1 else f"translate (rank {rank} of {world})"
    for index, batch in enumerate(tqdm(dataloader, desc=desc, unit="batch", leave=False)):
        interrupt.check("evaluation (resume=true evaluates again)")
        skipped_here = batch.pop("skipped_pairs", [])
        # every rank names every pair, so that names never depend on the sharding (no id: all pairs unreadable)
        names = sample_names(list(batch["id"]), list(batch["exemplar_id"]), seen) if "id" in batch else []
        if index % world != rank:
            continue
        skipped += [{"id": p.id, "exemplar_id": p.exemplar_id, "reason": p.reason} for p in skipped_here]
        if not names:
            continue
        ids = list(batch["id"])
        first_rows = len(seen) - len(names) < grid_rows  # this batch holds rows of the sample grid
        batch = _to_device(batch, device)
        fake, warped = _translate(model, batch, warp_labels)
        save_images(to_uint8(fake).cpu(), names, samples_dir, image_format)
        for kind in layout.REFERENCE_KINDS:
            if kind in batch:  # real photos by input id: one file per input, however many exemplars it has
                store.add(kind, to_uint8(batch[kind]).cpu(), ids if kind == "image" else names)
        if "labels" in batch:
            layout.save_label_maps(batch["labels"], ids, eval_dir / "labels")
        if "exemplar_labels" in batch:
            layout.save_label_maps(batch["exemplar_labels"], names, eval_dir / "exemplar_labels")
        if warped is not None:
            layout.save_label_maps(warped, names, eval_dir / "warped_labels")
        if first_rows:
            save_images(semantics_to_rgb(batch["semantics"].cpu()), names, eval_dir / "inputs", "png")
        rows += [
            {"name": n, "id": i, "exemplar_id": e, "batch": index}
            for n, i, e in zip(names, ids, batch["exemplar_id"], strict=True)
        ]
    store.save()
    layout.write_pairs(eval_dir, rows, name=f".pairs-{rank}.csv")
    atomic_write_text(eval_dir / f".skipped-{rank}.json", json.dumps(skipped))


def clear_folder(run_dir: Path) -> None:
    """Remove an earlier attempt's evaluation (rank zero, before translating): a re-run never mixes with it."""
    for stale in (Path(run_dir) / layout.SAMPLES, Path(run_dir) / layout.EVAL):
        if stale.exists():
            shutil.rmtree(stale)


def finish_folder(
    run_dir: Path, reference_root: Path, dataset_key: str, image_size: int, image_format: str, world: int
) -> layout.FolderInfo:
    """Join the ranks' shares (rank zero, after every rank has translated): ``eval/pairs.csv``, the skipped
    pairs, the reference folder and ``eval/folder.json``."""
    eval_dir = Path(run_dir) / layout.EVAL
    rows = [row for rank in range(world) for row in layout.read_pairs(eval_dir, f".pairs-{rank}.csv")]
    rows.sort(key=lambda row: row["batch"])  # the order one process would have written (stable within a batch)
    skipped = [p for rank in range(world) for p in json.loads((eval_dir / f".skipped-{rank}.json").read_text())]
    reference_dir, key = layout.finish_reference(reference_root, dataset_key, eval_dir / ".reference", world)
    layout.write_pairs(eval_dir, rows)
    atomic_write_text(eval_dir / layout.SKIPPED_FILE, json.dumps(skipped, indent=1))
    for rank in range(world):
        (eval_dir / f".pairs-{rank}.csv").unlink()
        (eval_dir / f".skipped-{rank}.json").unlink()
    info = layout.FolderInfo(str(reference_dir), key, f"{dataset_key}-{key}", image_size, image_format)
    info.write(eval_dir)
    if skipped:
        log.warning(
            "%d evaluation pair(s) skipped (unreadable files), e.g. %s: the metrics cover %d pairs",
            len(skipped),
            ", ".join(p["id"] for p in skipped[:5]),
            len(rows),
        )
    if not rows:
        raise ValueError("the evaluation split is empty: there is nothing to evaluate")
    return info
