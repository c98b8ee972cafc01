"""Checkpoints written atomically, in the folder they belong to.

Lightning's own writer goes through an fsspec transaction whose temporary file lies in the system's temporary
folder; when that is another file system the final move is a copy, and a kill during it leaves a truncated
``last.ckpt``. :class:`AtomicCheckpointIO` serialises with ``torch.save`` into a temporary file next to the
checkpoint and renames it (:func:`midms.files.atomic_write`): a kill or a full disk leaves the previous
checkpoint whole. Loading stays Lightning's (``weights_only`` as the runner asks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from midms import files


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        files.atomic_write(path, lambda f: torch.save(checkpoint, f))
