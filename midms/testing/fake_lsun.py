"""A small LSUN-Churches layout (photos and ADE20K label maps) for tests and benchmarks; see
:class:`midms.data.lsun.LSUNChurch` for the real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from midms.data.lsun import FOLDERS, LABEL_NC


def labelled_photo(rng: np.random.Generator, width: int, height: int, corner: int) -> tuple[np.ndarray, np.ndarray]:
    """A random ADE20K label map (five rectangles of classes 1..150, the top-left corner ``corner``: 255 is don't
    care, 0 unknown) and a photo rendered from it (a colour per class plus noise), both H×W(×3) uint8."""
    labels = np.zeros((height, width), dtype=np.uint8)
    for _ in range(5):
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        x1, y1 = x0 + rng.integers(6, width // 2), y0 + rng.integers(6, height // 2)
        labels[y0:y1, x0:x1] = rng.choice([*range(1, LABEL_NC + 1)])
    labels[: height // 8, : width // 8] = corner
    photo = rng.uniform(20, 235, size=(256, 3))[labels] + rng.normal(0, 3, (height, width, 3))
    return labels, np.clip(photo, 0, 255).astype(np.uint8)


def labelled_photos(seed: int, split: str, count: int, size: tuple[int, int], stem_of) -> Iterator:
    """``(stem, labels, photo)`` of ``count`` scenes of a split, each from its own generator; ``stem_of(index, rng)``
    names a scene (it may draw from the scene's generator first)."""
    for index in range(count):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
        stem = stem_of(index, rng)
        yield (stem, *labelled_photo(rng, *size, corner=255 if index % 2 == 0 else 0))


def write_fake_layout(
    root: str | Path,
    n_train: int = 8,
    n_val: int = 4,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    suffix: str = ".jpg",
    pairing_lists: bool = False,
) -> dict[str, list[str]]:
    """Write a small LSUN-Churches layout: photos rendered from random label maps (ADE20K ids, some 255).

    ``size`` is (width, height): non-square like LSUN. Returns the photo stems per split. With
    ``pairing_lists``, writes ``lsun_church_ref.txt`` (two references a line) and ``lsun_church_ref_test.txt``
    (one), naming the photos ``<stem>.jpg`` as MIDMs' lists do whatever the files' extension.
    """
    root = Path(root)
    splits: dict[str, list[str]] = {}
    for split, count in (("train", n_train), ("val", n_val)):
        folder = root / FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        splits[split] = []
        stems = lambda index, rng, split=split: f"{split}{index:03d}{rng.integers(16**6):06x}"  # noqa: E731
        for stem, labels, photo in labelled_photos(seed, split, count, size, stems):
            Image.fromarray(labels).save(folder / f"{stem}.png")
            img = Image.fromarray(photo)
            img.save(folder / f"{stem}{suffix}", **({"quality": 95} if suffix != ".webp" else {"lossless": True}))
            splits[split].append(stem)
    if pairing_lists:
        for name, ids, refs in (
            ("lsun_church_ref.txt", splits["train"], 2),
            ("lsun_church_ref_test.txt", splits["val"], 1),
        ):
            lines = [
                ",".join(f"{x}.jpg" for x in (s, *(ids[(i + k) % len(ids)] for k in range(1, refs + 1))))
                for i, s in enumerate(ids)
            ]
            (root / name).write_text("\n".join(lines) + "\n")
    return splits
