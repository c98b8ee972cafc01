"""The training side of a requested stop (:mod:`midms.interrupt`): a checkpoint after the step, then the stop."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from midms import interrupt

log = logging.getLogger(__name__)


class StopOnSigterm(L.Callback):
    """After each optimiser step: on a requested stop, write ``<dirpath>/last.ckpt`` and stop the job."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if interrupt.requested():
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path)
            log.warning("stopped by SIGTERM after step %d; checkpoint %s", trainer.global_step, path)
            interrupt.check(f"training (after step {trainer.global_step}; resume=true continues from {path})")
