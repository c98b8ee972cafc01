"""Test-only models injected into the real entry point (``model.module._target_=tiny_models.<Name>``).

They exercise the runner's training path without the cost of a real method.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback
from torch import Tensor

from midms.models.base import TranslationModel


class TinyTrainable(TranslationModel):
    """Output = a learned per-channel affine map of the exemplar, fitted to ``target`` with L1."""

    def __init__(self, data_spec, lr: float = 0.05) -> None:
        super().__init__(data_spec)
        self.scale = torch.nn.Parameter(torch.full((1, 3, 1, 1), 0.5))
        self.shift = torch.nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.lr = lr

    def translate(self, batch: dict) -> Tensor:
        return (batch["exemplar"] * self.scale + self.shift).clamp(-1, 1)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = (self.translate(batch) - batch["target"]).abs().mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/l1", (self.translate(batch) - batch["target"]).abs().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class FailingTrainable(TinyTrainable):
    """Raises in its third training step, as a bug in a model would."""

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        if batch_idx == 2:
            raise RuntimeError("deliberate failure in training_step")
        return super().training_step(batch, batch_idx)


class DieAtStep(Callback):
    """Kills the process hard (no clean-up, like an OOM kill or a pre-empted node) when training reaches
    ``step``, whatever the model."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            import os

            os._exit(3)


class TermAt(Callback):
    """Sends this process SIGTERM, as a scheduler pre-empting the job would: when training starts (``step=None``:
    before the model's own start, i.e. before MIDMs' prior stage) or when training reaches ``step``."""

    def __init__(self, step: int | None = None) -> None:
        self.step = step

    def _term(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.step is None:
            self._term()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.step is not None and trainer.global_step == self.step:
            self._term()
