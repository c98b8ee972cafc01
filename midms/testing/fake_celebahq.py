"""A small CelebA-HQ layout (photos, part masks, split files and pairing lists) for tests and benchmarks; see
:class:`midms.data.celebahq.CelebAHQEdges` for the real one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from midms.data.celebahq import FACE_CLASSES, FACE_PARTS


def _ellipse(draw: ImageDraw.ImageDraw, size: int, cx: float, cy: float, rx: float, ry: float) -> None:
    draw.ellipse([(cx - rx) * size, (cy - ry) * size, (cx + rx) * size, (cy + ry) * size], fill=255)


def _fake_masks(rng: np.random.Generator, size: int, glasses: bool, hat: bool) -> dict[str, Image.Image]:
    """Face-like part masks drawn in unit coordinates (so the same face at every resolution)."""
    j = rng.uniform(-0.03, 0.03, size=8)
    shapes: dict[str, list[tuple[str, tuple[float, ...]]]] = {
        "hair": [("ellipse", (0.5 + j[0], 0.4, 0.38, 0.36))],
        "skin": [("ellipse", (0.5 + j[0], 0.5 + j[1], 0.25, 0.31))],
        "neck": [("rect", (0.42, 0.75, 0.58, 0.95))],
        "cloth": [("rect", (0.1, 0.9, 0.9, 1.0))],
        "l_ear": [("ellipse", (0.24 + j[0], 0.5, 0.04, 0.07))],
        "r_ear": [("ellipse", (0.76 + j[0], 0.5, 0.04, 0.07))],
        "l_brow": [("rect", (0.34, 0.36 + j[2], 0.46, 0.39 + j[2]))],
        "r_brow": [("rect", (0.54, 0.36 + j[2], 0.66, 0.39 + j[2]))],
        "l_eye": [("ellipse", (0.4 + j[3], 0.44 + j[2], 0.05, 0.025))],
        "r_eye": [("ellipse", (0.6 + j[3], 0.44 + j[2], 0.05, 0.025))],
        "nose": [("ellipse", (0.5 + j[4], 0.55, 0.04, 0.07))],
        "u_lip": [("ellipse", (0.5 + j[5], 0.67 + j[6], 0.09, 0.02))],
        "mouth": [("ellipse", (0.5 + j[5], 0.69 + j[6], 0.08, 0.01))],
        "l_lip": [("ellipse", (0.5 + j[5], 0.71 + j[6], 0.09, 0.02))],
    }
    if glasses:
        shapes["eye_g"] = [("rect", (0.32, 0.41 + j[2], 0.68, 0.48 + j[2]))]
    if hat:
        shapes["hat"] = [("rect", (0.15, 0.0, 0.85, 0.12 + j[7]))]
    out = {}
    for part, items in shapes.items():
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        for kind, args in items:
            if kind == "ellipse":
                _ellipse(draw, size, *args)
            else:
                x0, y0, x1, y1 = args
                draw.rectangle(
                    [x0 * size, y0 * size, max(x0 * size, x1 * size - 1), max(y0 * size, y1 * size - 1)], fill=255
                )
        out[part] = canvas
    hair = np.asarray(out["hair"]).copy()  # hair behind the face, as in the real masks
    hair[np.asarray(out["skin"]) != 0] = 0
    out["hair"] = Image.fromarray(hair)
    return out


def write_fake_layout(
    root: str | Path,
    n_train: int = 8,
    n_val: int = 4,
    photo_size: int = 64,
    mask_size: int = 64,
    seed: int = 0,
    pairing_lists: bool = False,
) -> dict[str, list[str]]:
    """Write a small CelebA-HQ layout of generated faces (photos rendered from their own part masks).

    Ids step by 701 so that they spread over several mask sub-folders (``id // 2000``). Returns the ids of
    each split. With ``pairing_lists``, also writes ``celebahq_ref.txt`` (two references a line, from the
    training split) and ``celebahq_ref_test.txt`` (one reference a line, from the validation split).
    """
    root = Path(root)
    ids = [str(701 * i) for i in range(n_train + n_val)]
    splits = {"train": ids[:n_train], "val": ids[n_train:]}
    (root / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
    for index, sample_id in enumerate(ids):
        rng = np.random.default_rng([seed, index])
        masks = _fake_masks(rng, mask_size, glasses=index % 3 == 0, hat=index % 4 == 1)
        folder = root / "CelebAMask-HQ-mask-anno" / str(int(sample_id) // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        labels = np.zeros((photo_size, photo_size), dtype=np.int64)
        for k, part in enumerate(FACE_PARTS, start=1):
            if part in masks:
                masks[part].save(folder / f"{int(sample_id):05d}_{part}.png")
                big = np.asarray(masks[part].resize((photo_size, photo_size), Image.NEAREST))
                labels[big != 0] = k
        palette = rng.uniform(30, 225, size=(len(FACE_CLASSES), 3))
        yy, xx = np.mgrid[0:photo_size, 0:photo_size] / photo_size
        stripes = 40.0 * np.sin(2 * np.pi * (rng.uniform(3, 6) * xx + rng.uniform(1, 3) * yy))[..., None]
        photo = palette[labels] + np.where(labels[..., None] == 0, stripes, 0.0) + rng.normal(0, 3, (*labels.shape, 3))
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(
            root / "CelebA-HQ-img" / f"{sample_id}.jpg", quality=95
        )
    for split, name in (("train", "train.txt"), ("val", "val.txt")):
        (root / name).write_text("".join(f"{i}\n" for i in splits[split]))
    if pairing_lists:
        _write_pairs(root / "celebahq_ref.txt", splits["train"], refs_per_line=2)
        _write_pairs(root / "celebahq_ref_test.txt", splits["val"], refs_per_line=1)
    return splits


def _write_pairs(path: Path, ids: Sequence[str], refs_per_line: int) -> None:
    lines = []
    for i, sample_id in enumerate(ids):
        refs = [ids[(i + k) % len(ids)] for k in range(1, refs_per_line + 1)]
        lines.append(",".join(f"{x}.jpg" for x in (sample_id, *refs)))
    path.write_text("\n".join(lines) + "\n")
