"""Learning curves on the synthetic dataset: matching accuracy and PSNR against the ground truth, by training step.

    python -m benchmarks.learning_curves [--steps 600] [--every 100] [--pairs 64] [overrides...]

Trains one model (default ``model=midms``; any Hydra override, e.g. ``model=cocosnet``) through the same
config, datamodule and Lightning loop as ``run.py``, and every ``--every`` optimiser steps measures, on the
first ``--pairs`` test pairs, the matching accuracy of the model's warp and the PSNR and SSIM of its
translation against ``target``. copy_exemplar (the exemplar as the output) is measured on the same pairs as the line to
beat. Writes ``benchmarks/results/learning_<model>.csv`` and prints the table: the budget at which a target
is met, or the evidence that it is not.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import Tensor
from torch.utils.data import default_collate
from torchmetrics.functional.image import structural_similarity_index_measure

from midms.data.build import build_datamodule
from midms.metrics.matching import matching_accuracy, warped_label_map
from midms.metrics.pixel import per_image_psnr

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("learning_curves")


def psnr(fake: Tensor, target: Tensor) -> float:
    """Mean per-image PSNR (dB) of images in [-1, 1] (data range 2), as ``eval/psnr`` on [0, 1] images."""
    return float(per_image_psnr(fake, target).mean())


def ssim(fake: Tensor, target: Tensor) -> float:
    """Mean per-image SSIM of images in [-1, 1], taken on [0, 1] with torchmetrics' defaults (as ``eval/ssim``)."""
    fake, target = ((fake + 1) / 2).clamp(0, 1), ((target + 1) / 2).clamp(0, 1)
    return float(structural_similarity_index_measure(fake, target, data_range=1.0, reduction="none").mean())


def accuracy(model, batch: dict, num_classes: int) -> float:
    """Matching accuracy of the model's warp (:func:`midms.metrics.matching.matching_accuracy`, mean over images)."""
    onehot = F.one_hot(batch["exemplar_labels"], num_classes).permute(0, 3, 1, 2).float()
    carried = warped_label_map(model.warp(batch, onehot), tuple(batch["labels"].shape[-2:]))
    return float(matching_accuracy(carried, batch["labels"]).mean())


class Probe(L.Callback):
    """Measures the model on fixed pairs every ``every`` steps (and after the last)."""

    def __init__(self, batch: dict, num_classes: int, every: int) -> None:
        self.batch, self.num_classes, self.every = batch, num_classes, every
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()
        self.last_phase: str | None = "start"

    def measure(self, trainer, model) -> None:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            row = {"step": trainer.global_step, "seconds": round(time.perf_counter() - self.t0, 1)}
            if getattr(model, "can_warp", False):
                row["matching_accuracy"] = accuracy(model, self.batch, self.num_classes)
            fake = model.translate(self.batch)
            row["psnr"], row["ssim"] = psnr(fake, self.batch["target"]), ssim(fake, self.batch["target"])
        if hasattr(model, "phase"):  # the phase of the last step taken (MIDMs: warmup | e2e)
            row["phase"] = self.last_phase
        self.rows.append(row)
        log.info("%s", row)
        model.train(was_training)

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        if not self.rows:  # after the model's own on_train_start (e.g. MIDMs' prior stage): step 0 as trained on
            self.measure(trainer, model)
            self.t0 = time.perf_counter()
        self.last_phase = model.phase() if hasattr(model, "phase") else None

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.measure(trainer, model)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--out", type=Path, default=None, help="CSV path (default benchmarks/results/learning_<model>.csv)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=cocosnet dataset.image_size=64")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["model=midms", "logger=none", "callbacks=none", *args.overrides])
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg.dataset)
    test = datamodule.split("test")
    batch = default_collate([test[i] for i in range(min(args.pairs, len(test)))])
    copy = {"matching_accuracy": float((batch["exemplar_labels"] == batch["labels"]).float().mean())}
    copy["psnr"] = psnr(batch["exemplar"], batch["target"])
    copy["ssim"] = ssim(batch["exemplar"], batch["target"])
    model = instantiate(cfg.model.module, data_spec=datamodule.spec)
    probe = Probe(batch, int(cfg.dataset.num_classes), args.every)
    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator=cfg.trainer.accelerator,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[probe],
    )
    trainer.fit(model, datamodule=datamodule)
    if not probe.rows or probe.rows[-1]["step"] != trainer.global_step:
        probe.measure(trainer, model)
    table = pd.DataFrame(probe.rows)
    table["psnr_over_copy_exemplar"] = table["psnr"] - copy["psnr"]
    table["ssim_over_copy_exemplar"] = table["ssim"] - copy["ssim"]
    out = args.out or ROOT / "benchmarks" / "results" / f"learning_{cfg.model.name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"copy_exemplar on the same {len(batch['id'])} pairs: " + ", ".join(f"{k} {v:.3f}" for k, v in copy.items()))
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print(f"written to {out}")
    return table


if __name__ == "__main__":
    main()
