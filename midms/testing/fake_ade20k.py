"""A small ADE20K layout for tests: the release's ``images/`` and ``annotations/`` folders linked under each split
(photos and label maps in different folders, paired by name), CoCosNet's file names and pairing lists; see
:class:`midms.data.ade20k.ADE20K` for the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from midms.data.ade20k import FOLDERS, NAME_TAG
from midms.data.lsun import LABEL_NC


def write_fake_layout(root: str | Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (64, 48),
                      seed: int = 0, pairing_lists: bool = True) -> dict[str, list[str]]:  # fmt: skip
    """Write photos rendered from random label maps (ids 0..150, some 255) as ``<split>/images/ADE_<tag>_<n>.jpg``
    and ``<split>/annotations/ADE_<tag>_<n>.png``. With ``pairing_lists``: ``ade20k_ref.txt`` (three references a
    line, training photos) and ``ade20k_ref_test.txt`` (two, training photos, as CoCosNet's). Returns the stems."""
    root = Path(root)
    width, height = size
    splits: dict[str, list[str]] = {}
    for split, count in (("train", n_train), ("val", n_val)):
        images, annotations = root / FOLDERS[split] / "images", root / FOLDERS[split] / "annotations"
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        splits[split] = []
        for index in range(count):
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
            stem = f"ADE{NAME_TAG[split]}{index + 1:08d}"
            labels = np.zeros((height, width), dtype=np.uint8)
            for _ in range(5):
                x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
                x1, y1 = x0 + rng.integers(6, width // 2), y0 + rng.integers(6, height // 2)
                labels[y0:y1, x0:x1] = rng.integers(1, LABEL_NC + 1)
            labels[: height // 8, : width // 8] = 255 if index % 2 == 0 else 0
            photo = rng.uniform(20, 235, size=(256, 3))[labels] + rng.normal(0, 3, (height, width, 3))
            Image.fromarray(labels).save(annotations / f"{stem}.png")
            Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(images / f"{stem}.jpg", quality=95)
            splits[split].append(stem)
    if pairing_lists:
        train = splits["train"]
        for name, queries, refs in (("ade20k_ref.txt", train, 3), ("ade20k_ref_test.txt", splits["val"], 2)):
            lines = [",".join(f"{x}.jpg" for x in (q, *(train[(i + k) % len(train)] for k in range(1, refs + 1))))
                     for i, q in enumerate(queries)]  # fmt: skip
            (root / name).write_text("\n".join(lines) + "\n")
    return splits
