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


class UnsupportedImage(UnreadableFile):
    """A file that decodes but whose pixels have no faithful 8-bit RGB reading (transparency, float pixels)."""


#: modes PIL converts to RGB exactly as their pixels mean it (grey replicated, palette looked up, CMYK inverted)
_DIRECT_TO_RGB = {"RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBX"}
#: high-bit-depth greyscale: PIL's ``convert("RGB")`` clips these at 255 (a 16-bit PNG reads 99.6 % white)
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def to_rgb(im: Image.Image, path: Path | str = "") -> Image.Image:
    """An image of any mode as 8-bit RGB, or :class:`UnsupportedImage` naming the mode and why.

    16-bit greyscale is scaled to 8 bits (``round(v / 257)``, 65535 -> 255); transparency is accepted only where
    every pixel is opaque (a photo has no alpha to composite onto a colour this suite would have to invent)."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _DIRECT_TO_RGB:
        return im if im.mode == "RGB" else im.convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise UnsupportedImage(
                path,
                f"mode {im.mode} with {int((alpha < 255).sum())} transparent pixel(s): flatten it onto a "
                "background (or save it without alpha) so that its colours are defined",
            )
        return im.convert("RGB")
    if im.mode in _SIXTEEN_BIT:
        values = np.asarray(im, dtype=np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise UnsupportedImage(path, f"mode {im.mode} with values outside 0..65535: not a 16-bit image")
        grey = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    raise UnsupportedImage(path, f"mode {im.mode} has no 8-bit RGB reading here: save it as 8-bit RGB (PNG or JPEG)")


def load_image(path: Path | str, mode: str | None = "RGB") -> Image.Image:
    """Decode a whole image file (``mode="RGB"``: :func:`to_rgb`; another mode: PIL's conversion; None: as it is);
    raise :class:`UnreadableFile` on failure."""
    try:
        with Image.open(path) as im:
            im.load()
            if mode == "RGB":
                return to_rgb(im, path).copy()
            return im.convert(mode) if mode is not None and im.mode != mode else im.copy()
    except _DECODE_ERRORS as err:
        raise UnreadableFile(path, f"{type(err).__name__}: {err}") from err


#: how an image of another size is brought to the evaluation size: PIL bilinear, as the semantic and style
#: metrics' reference scripts load images (torchvision ``Resize((256, 256))`` on PIL images: UNITE's and MATEBIT's
#: ``test_vgg_metrics``)
RESIZE_FILTER = Image.BILINEAR


def load_image_tensor(path: Path | str, size: int | None = None) -> torch.Tensor:
    """An RGB image as a uint8 3×H×W tensor, resized (:data:`RESIZE_FILTER`) to ``size``×``size`` when given."""
    return array_to_tensor(np.asarray(load_image(path)), size)


def array_to_tensor(array: np.ndarray, size: int | None = None) -> torch.Tensor:
    """A decoded uint8 H×W×3 image as a uint8 3×H×W tensor, resized as :func:`load_image_tensor` resizes."""
    if size is not None and array.shape[:2] != (size, size):
        array = np.asarray(Image.fromarray(array).resize((size, size), RESIZE_FILTER))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


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
