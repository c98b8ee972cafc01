"""Image folders as metrics read them: list by stem, match two folders by name, load as uint8 tensors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from midms.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


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


def match_folders(a: str | Path, b: str | Path) -> list[tuple[str, Path, Path]]:
    """Pair the images of two folders by stem; a name present in only one folder is an error naming it."""
    fa, fb = list_images(a), list_images(b)
    only_a, only_b = sorted(fa.keys() - fb.keys()), sorted(fb.keys() - fa.keys())
    if only_a or only_b:
        raise UserError(
            f"Folders {a} and {b} must hold the same file names (stems). "
            f"Only in the first: {only_a[:5]}{'...' if len(only_a) > 5 else ''}; "
            f"only in the second: {only_b[:5]}{'...' if len(only_b) > 5 else ''}."
        )
    return [(k, fa[k], fb[k]) for k in fa]


def load_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """Load an image as a uint8 3×H×W tensor, resized (bicubic) to ``size``×``size`` when given."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def iter_batches(paths: list[Path], batch_size: int, size: int | None = None) -> Iterator[torch.Tensor]:
    """Yield uint8 B×3×H×W batches of the images in ``paths``, in order."""
    for i in range(0, len(paths), batch_size):
        yield torch.stack([load_image(p, size) for p in paths[i : i + batch_size]])


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return x.float() / 255.0
