"""Image folders as metrics read them: list by stem (one file per name), and uint8 images as floats in [0, 1]."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from midms.errors import UserError
from midms.imageio import IMAGE_SUFFIXES


def list_images(folder: str | Path) -> dict[str, Path]:
    """Map file stem -> path for every image in ``folder`` (not recursive), sorted by stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"Image folder {folder} does not exist; pass a folder of {', '.join(IMAGE_SUFFIXES)} files.")
    paths = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    files = {p.stem: p for p in paths}
    if not files:
        raise UserError(f"Image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    if len(files) < len(paths):  # a.png and a.jpg: one name, two pictures; which one is meant?
        counts = Counter(p.stem for p in paths)
        twins = sorted(p.name for p in paths if counts[p.stem] > 1)
        raise UserError(
            f"Image folder {folder} holds several files under one name (stem): {twins[:6]}. Images are matched "
            f"by name; keep one file per name."
        )
    return dict(sorted(files.items()))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return x.float() / 255.0
