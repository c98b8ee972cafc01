"""``model=copy_exemplar``: output the exemplar unchanged. A real lower-bound row of every table."""

from __future__ import annotations

from torch import Tensor

from midms.models.base import TranslationModel


class CopyExemplar(TranslationModel):
    """Ignores the input semantics; the translation is the exemplar itself. Nothing to train.

    Its correspondence is the identity (every input pixel takes the exemplar pixel at the same place), so its
    matching accuracy is the floor a learned correspondence has to beat: how often the two layouts already agree.
    """

    trains = False
    can_warp = True

    def translate(self, batch: dict) -> Tensor:
        return batch["exemplar"].clone()

    def warp(self, batch: dict, values: Tensor | None = None) -> Tensor:
        return (batch["exemplar_semantics"] if values is None else values).clone()
