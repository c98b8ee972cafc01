"""The model contract (docs/guides/adding-a-method.md): a LightningModule that also implements ``translate``.

The evaluator calls :meth:`TranslationModel.translate_and_warp`: :meth:`TranslationModel.translate`, and
:meth:`TranslationModel.warp` where a model matches the exemplar to the input (one matching for both).
Training details stay inside each module.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from midms.data.contract import DataSpec


class TranslationModel(L.LightningModule):
    """Base of every method (MIDMs, each baseline).

    Subclasses set ``trains = False`` when there is nothing to fit (the runner then skips training), and
    ``can_warp = True`` when they implement :meth:`warp`.
    """

    trains: bool = True
    can_warp: bool = False

    def __init__(self, data_spec: DataSpec) -> None:
        super().__init__()
        self.data_spec = data_spec
        #: seconds of the stages a model runs inside the fit before its first step (MIDMs' prior, a loss
        #: network): the job's time table shows them apart from the training (midms.timing)
        self.stage_seconds: dict[str, float] = {}

    def translate(self, batch: dict) -> Tensor:
        """Translate ``batch["semantics"]`` in the style of ``batch["exemplar"]``: B×3×H×W in [-1, 1]."""
        raise NotImplementedError

    def warp(self, batch: dict, values: Tensor | None = None) -> Tensor:
        """Warp exemplar-aligned ``values`` (B×C×H×W; default ``batch["exemplar_semantics"]``) onto the input.

        This is the model's correspondence; the matching-accuracy metric warps the exemplar's one-hot labels.
        """
        raise NotImplementedError(f"{type(self).__name__} does not warp the exemplar (can_warp is False)")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The validation curves: L1 and PSNR of the translation against the ground truth (``target`` where the
        data have one, else the input's own photo), in [-1, 1] and on the [0, 1] scale for PSNR."""
        from midms.metrics.pixel import per_image_psnr

        fake = self.translate(batch)
        ref = batch["target"] if "target" in batch else batch["image"]
        values = {"val/l1": (fake - ref).abs().mean(), "val/psnr": per_image_psnr(fake, ref).mean()}
        self.log_dict(values, on_epoch=True, sync_dist=True, batch_size=fake.shape[0])

    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """:meth:`translate` and, when ``values`` is given and the model warps, :meth:`warp` of ``values``.

        The evaluator calls this; a model that matches overrides it to run its matching once for both."""
        fake = self.translate(batch)
        return fake, (self.warp(batch, values) if values is not None and self.can_warp else None)


def plain(value: Any) -> Any:
    """An OmegaConf container as plain dicts and lists (anything else unchanged).

    Hyper-parameters are saved into checkpoints, which are read back with ``torch.load(weights_only=True)``:
    that accepts plain containers and tensors only."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
