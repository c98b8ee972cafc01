"""A small DeepFashion layout for tests: In-shop photo folders, OpenPose result files, CoCosNet's split and pairing
lists with Windows separators; see :class:`midms.data.deepfashion.DeepFashion` for the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from midms.data.pose import KEYPOINTS

VIEWS = ("1_front", "2_side", "3_back", "4_full")


def write_pose(stem: Path, rng: np.random.Generator, size: tuple[int, int], missing: int = 3) -> None:
    """OpenPose's two files for one person: ``missing`` keypoints not found (-1), the others spread over the photo."""
    width, height = size
    found = np.ones(KEYPOINTS, dtype=bool)
    found[rng.choice(KEYPOINTS, size=missing, replace=False)] = False
    rows = np.full(KEYPOINTS, -1.0)
    rows[found] = np.arange(found.sum())
    xy = rng.uniform([2, 2], [width - 3, height - 3], size=(int(found.sum()), 2))
    candidate = np.column_stack([xy, rng.uniform(0.3, 1.0, len(xy)), np.arange(len(xy))])
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(stem.with_name(stem.name + "_candidate.txt"), candidate, fmt="%.6f")
    subset = np.concatenate([rows, [candidate[:, 2].sum(), found.sum()]])
    np.savetxt(stem.with_name(stem.name + "_subset.txt"), subset[None], fmt="%.6f")


def write_fake_layout(root: str | Path, garments: dict[str, int] | None = None, views: int = 3,
                      size: tuple[int, int] = (48, 64), seed: int = 0) -> dict[str, list[str]]:  # fmt: skip
    """Write ``img/`` photos and ``pose/`` files of ``garments[split]`` garments with ``views`` views each, the split
    lists, ``deepfashion_ref.txt`` / ``_test.txt`` (two references: a photo of another garment, then one of the
    training split) and ``deepfashion_self_pair.txt`` (the other views of every garment but the last of a split).
    Returns each split's relative photo paths (``/``-separated), in list order."""
    root, rng = Path(root), np.random.default_rng(seed)
    garments = garments or {"train": 3, "val": 2}
    paths: dict[str, list[str]] = {}
    for split, count in garments.items():
        paths[split] = []
        for g in range(count):
            folder = f"img/{'WOMEN' if g % 2 else 'MEN'}/Dresses/id_{split}{g:05d}"
            colour = rng.integers(0, 256, 3)
            for v in range(views):
                rel = f"{folder}/0{1 + g % 2}_{VIEWS[v % len(VIEWS)]}.jpg"
                photo = np.clip(colour + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(photo).save(root / rel, quality=95)
                write_pose(root / rel.replace("img/", "pose/", 1).removesuffix(".jpg"), rng, size)
                paths[split].append(rel)
    windows = lambda rel: rel.replace("/", "\\")  # noqa: E731  (the official lists' separators)
    for split, name in (("train", "train.txt"), ("val", "val.txt")):
        (root / name).write_text("".join(f"{windows(p)}\n" for p in paths[split]))
    train = paths["train"]
    self_pairs = []
    for split, name in (("train", "deepfashion_ref.txt"), ("val", "deepfashion_ref_test.txt")):
        lines = []
        for i, rel in enumerate(paths[split]):
            other = paths[split][(i + views) % len(paths[split])]  # the next garment's view
            lines.append(",".join(windows(p) for p in (rel, other, train[(i + views) % len(train)])))
        (root / name).write_text("\n".join(lines) + "\n")
        for i, rel in enumerate(paths[split][:-views]):
            siblings = [p for p in paths[split][i - i % views : i - i % views + views] if p != rel]
            self_pairs.append(",".join(windows(p) for p in (rel, *siblings)))
    (root / "deepfashion_self_pair.txt").write_text("\n".join(self_pairs))
    return paths
