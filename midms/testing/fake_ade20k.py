"""A small ADE20K layout for tests: the release's ``images/`` and ``annotations/`` folders linked under each split
(photos and label maps in different folders, paired by name), CoCosNet's file names and pairing lists; see
:class:`midms.data.ade20k.ADE20K` for the real one."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from midms.data.ade20k import FOLDERS, NAME_TAG
from midms.testing.fake_lsun import labelled_photos


def write_fake_layout(root: str | Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (64, 48),
                      seed: int = 0, pairing_lists: bool = True) -> dict[str, list[str]]:  # fmt: skip
    """Write photos rendered from random label maps (ids 0..150, some 255) as ``<split>/images/ADE_<tag>_<n>.jpg``
    and ``<split>/annotations/ADE_<tag>_<n>.png``. With ``pairing_lists``: ``ade20k_ref.txt`` (three references a
    line, training photos) and ``ade20k_ref_test.txt`` (two, training photos, as CoCosNet's). Returns the stems."""
    root = Path(root)
    splits: dict[str, list[str]] = {}
    for split, count in (("train", n_train), ("val", n_val)):
        images, annotations = root / FOLDERS[split] / "images", root / FOLDERS[split] / "annotations"
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        splits[split] = []
        stems = lambda index, _rng, split=split: f"ADE{NAME_TAG[split]}{index + 1:08d}"  # noqa: E731
        for stem, labels, photo in labelled_photos(seed, split, count, size, stems):
            Image.fromarray(labels).save(annotations / f"{stem}.png")
            Image.fromarray(photo).save(images / f"{stem}.jpg", quality=95)
            splits[split].append(stem)
    if pairing_lists:
        train = splits["train"]
        for name, queries, refs in (("ade20k_ref.txt", train, 3), ("ade20k_ref_test.txt", splits["val"], 2)):
            lines = [",".join(f"{x}.jpg" for x in (q, *(train[(i + k) % len(train)] for k in range(1, refs + 1))))
                     for i, q in enumerate(queries)]  # fmt: skip
            (root / name).write_text("\n".join(lines) + "\n")
    return splits
