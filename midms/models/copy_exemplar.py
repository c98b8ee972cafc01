"""``model=copy_exemplar``: output the exemplar unchanged. A real lower-bound row of every table."""

from __future__ import annotations

from torch import Tensor

from midms.models.base import TranslationModel


class CopyExemplar(TranslationModel):
    """Ignores the input semantics; the translation is the exemplar itself. Nothing to train."""

    trains = False

    def translate(self, batch: dict) -> Tensor:
        return batch["exemplar"].clone()
