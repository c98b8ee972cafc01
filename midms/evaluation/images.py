"""Image conversion and saving for the evaluator: quantise exactly once, save, and show a grid."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG"}
JPEG_QUALITY = 95  # PIL's default is 75; papers that saved .jpg used high-quality settings

# distinct colours for label / one-hot visualisations
_PALETTE = np.array(
    [
        [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
        [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
    ],
    dtype=np.uint8,
)  # fmt: skip


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] float B×3×H×W -> uint8, rounding to the nearest level (the one quantisation of the protocol)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def encode(image: Tensor, fmt: str) -> bytes:
    """uint8 3×H×W -> encoded file bytes."""
    buf = io.BytesIO()
    pil = Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
    if fmt == "jpg":
        pil.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        pil.save(buf, format=IMAGE_FORMATS[fmt])
    return buf.getvalue()


def decode(data: bytes) -> Tensor:
    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


def save_images(images: Tensor, names: list[str], folder: Path, fmt: str = "png") -> Tensor:
    """Save uint8 B×3×H×W images as ``folder/<name>.<fmt>``; return what the files decode to.

    Metrics read the returned tensor, so they see exactly what was saved (a lossy ``jpg`` included).
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image format {fmt!r} is not supported; use one of {sorted(IMAGE_FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for image, name in zip(images, names, strict=True):
        data = encode(image, fmt)
        (folder / f"{name}.{fmt}").write_bytes(data)
        saved.append(image if fmt == "png" else decode(data))
    return torch.stack(saved)


def semantics_to_rgb(semantics: Tensor) -> Tensor:
    """A viewable uint8 B×3×H×W picture of the input semantics (edges in grey, one-hot as a palette)."""
    if semantics.shape[1] == 1:
        grey = (semantics.clamp(0, 1) * 255).round().to(torch.uint8)
        return grey.expand(-1, 3, -1, -1)
    labels = semantics.argmax(1).cpu().numpy() % len(_PALETTE)
    return torch.from_numpy(_PALETTE[labels]).permute(0, 3, 1, 2)


def image_grid(columns: list[Tensor], max_rows: int = 8) -> np.ndarray:
    """Rows = samples, columns = (input, exemplar, output, reference...): H×W×3 uint8."""
    rows = [torch.cat([c[i].cpu() for c in columns], dim=2) for i in range(min(max_rows, columns[0].shape[0]))]
    return torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
