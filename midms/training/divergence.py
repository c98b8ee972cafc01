"""A training run whose losses stop being finite ends at once, as ``failed``, naming the step and the losses.

Without this a diverged run (say ``lr=1e12``) trains on, writes NaN weights into its checkpoints, translates
black images and is scored like any other. :class:`StopOnNonFiniteLoss` (``callbacks.finite_losses``) reads the
losses the model logged for the step (``train/*``) after every optimiser step, before any checkpoint callback of
that step saves, and raises :class:`TrainingDiverged`, which the runner records as the job's error.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from midms.errors import UserError


class TrainingDiverged(UserError):
    """A training loss became NaN or infinite."""


def non_finite(metrics: dict) -> dict[str, float]:
    """The logged training values (``train/...``) that are NaN or infinite."""
    bad = {}
    for name, value in metrics.items():
        if name.startswith("train/") and torch.is_tensor(value) and value.numel() == 1:
            number = float(value)
            if not math.isfinite(number):
                bad[name] = number
    return bad


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`TrainingDiverged` when a logged training loss is not finite."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        bad = non_finite(trainer.callback_metrics)
        if bad:
            shown = ", ".join(f"{k} = {v}" for k, v in sorted(bad.items())[:6])
            raise TrainingDiverged(
                f"training diverged at optimiser step {trainer.global_step} (epoch {trainer.current_epoch}, batch "
                f"{batch_idx}): {shown}. The weights are no longer finite, so nothing is evaluated and no checkpoint "
                f"of this step is written. Lower the learning rate (model.*.lr) or check the inputs; a resumed run "
                f"would continue from the last checkpoint before the divergence."
            )
