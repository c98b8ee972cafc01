"""Lightning's learning-rate monitor (``lr-<optimizer>`` curves), inert in a job without a logger.

Lightning's own callback refuses to start without a logger; ``logger=none`` keeps the callbacks of the default set.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor as _LightningMonitor


class LearningRateMonitor(_LightningMonitor):
    _inert = False

    def on_train_start(self, trainer, *args, **kwargs) -> None:
        self._inert = not trainer.loggers
        if not self._inert:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        if not self._inert:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer, *args, **kwargs) -> None:
        if not self._inert:
            super().on_train_epoch_start(trainer, *args, **kwargs)
