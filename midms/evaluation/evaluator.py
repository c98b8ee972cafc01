"""The one evaluator for every method (docs/evaluation.md): translate into the run's folder,
then score the folder.

Stage one (:mod:`midms.evaluation.translate`) writes the outputs under ``<run dir>/samples/<name>.<format>``,
the real side once per content into the shared reference cache, and the labels, warped labels and pairs under
``<run dir>/eval/``; stage two (:func:`midms.evaluation.scoring.score_folder`) computes every configured metric
on exactly the 8-bit images that were saved. Under DDP (``shard=(rank, world)``) every process translates its
share; after a barrier rank zero joins the shares and scores the folder, and the other ranks return None.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from midms.evaluation.scoring import Scores, score_folder
from midms.evaluation.translate import clear_folder, finish_folder, translate_to_folder
from midms.metrics.base import Metric
from midms.models.base import TranslationModel


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


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
) -> Scores | None:
    """Translate every evaluation pair into ``run_dir`` and score it (None on the ranks other than zero).

    Example::

        from midms import evaluate
        from midms.metrics.pixel import PSNR
        scores = evaluate(model, loader, {"psnr": PSNR()}, "runs/mine", ".cache/midms", dataset.dataset_key, 64)
        print(scores.metrics, scores.skipped)
    """
    run_dir, rank, world = Path(run_dir), *shard
    reference_root = Path(cache_dir) / "reference"
    if rank == 0:
        clear_folder(run_dir)
    _barrier()  # the folder is clean
    start = time.perf_counter()
    translate_to_folder(
        model,
        dataloader,
        run_dir,
        reference_root,
        dataset_key,
        image_format=image_format,
        device=device,
        shard=shard,
        warp_labels=any(m.needs_warp for m in metrics.values()),
        grid_rows=grid_rows,
    )
    _barrier()  # every share is written
    if rank != 0:
        return None
    finish_folder(run_dir, reference_root, dataset_key, image_size, image_format, world)
    translated = time.perf_counter() - start
    scores = score_folder(run_dir, metrics, cache_dir, device=device, seed=seed, grid_rows=grid_rows)
    scores.translation_seconds = translated
    return scores
