"""Reading image files: one suffix list, one decoder, one check, for datasets, metrics and ``midms-eval``.

A file that cannot be decoded (missing since it was listed, corrupt, truncated, malformed) raises
:class:`UnreadableFile` naming it; callers decide whether that skips a sample or stops the run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: the image files the suite reads (photos, label maps, evaluation folders)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class UnreadableFile(Exception):
    """A file that cannot be decoded: missing since the index was built, corrupt, truncated or malformed."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def load_image(path: Path | str, mode: str | None = "RGB") -> Image.Image:
    """Decode a whole image file (converted to ``mode`` unless None); raise :class:`UnreadableFile` on failure."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode) if mode is not None and im.mode != mode else im.copy()
    except _DECODE_ERRORS as err:
        raise UnreadableFile(path, f"{type(err).__name__}: {err}") from err


def load_image_tensor(path: Path | str, size: int | None = None) -> torch.Tensor:
    """An RGB image as a uint8 3×H×W tensor, resized (PIL bicubic) to ``size``×``size`` when given."""
    im = load_image(path)
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def check_image(path: Path | str, full: bool = False) -> str | None:
    """None when ``path`` decodes, else the reason. Quick mode decodes JPEGs at reduced scale (fast, but a
    truncated file can pass); ``full`` decodes every pixel, as training and evaluation will."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG" and not full:
                im.draft(im.mode, (64, 64))
            im.load()
    except FileNotFoundError:
        return "missing"
    except _DECODE_ERRORS as err:
        return f"{type(err).__name__}: {err}"
    return None
