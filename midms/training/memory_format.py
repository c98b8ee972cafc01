"""Training in the channels-last (NHWC) memory format.

oneDNN (CPU) and cuDNN (GPU) run convolutions fastest on NHWC tensors; PyTorch keeps NCHW unless asked
(https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html). :class:`ChannelsLast` converts the
module's convolution weights when training is set up, before the optimisers exist and before a checkpoint is
loaded into them, and each training batch's images (4-D floating tensors) before the step. A convolution
whose input or weight is channels-last returns channels-last, so features stay NHWC through a network; the
computed values are the same up to float rounding (a different summation order). Weights written elsewhere
(the prior cache's safetensors) are made contiguous first, so files do not depend on the layout.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


def channels_last(batch: Any) -> Any:
    """The batch dict with its 4-D floating tensors in channels-last format (others unchanged), in place."""
    if isinstance(batch, dict):
        for key, value in batch.items():
            if torch.is_tensor(value) and value.dim() == 4 and value.is_floating_point():
                batch[key] = value.contiguous(memory_format=torch.channels_last)
    return batch


def as_after_training(model: torch.nn.Module, callbacks: Any) -> None:
    """A trained checkpoint loaded for evaluation alone, put in the layout training leaves its weights in when the
    run's ``callbacks`` convert them (a convolution rounds differently on the other layout): it then scores the same
    floats as the evaluation that follows training."""
    if (callbacks or {}).get("memory_format"):
        model.to(memory_format=torch.channels_last)


class ChannelsLast(L.Callback):
    """Convolution weights and training images in channels-last format (``callbacks.memory_format``)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, index: int) -> None:
        channels_last(batch)
