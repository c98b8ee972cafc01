"""The embedded default dataset: generated scenes with a ground-truth exemplar-based translation.

Each scene is a label map of ``num_classes`` classes (class 0 is the background; every foreground class
is drawn at least once, plus a few random extra shapes: ellipses, polygons, stripes) together with a
*style*: per class, a colour and a texture (flat, smooth noise or sinusoidal stripes). A sample pairs a
scene with the exemplar of another scene of the same split, so

- ``image``  = the scene's labels rendered in the scene's own style,
- ``exemplar`` = the other scene rendered in its own style,
- ``target`` = the scene's labels rendered in the *exemplar's* style: the ground-truth translation.

Everything is a pure function of ``(seed, split, index)``, so every model sees the same pairs and
nothing has to be downloaded. Scenes are drawn in a unit coordinate frame and rasterised at
``image_size``, so the same index gives the same scene at every resolution.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from midms.data.contract import DataSpec
from midms.errors import UserError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TEXTURES = ("flat", "noise", "stripes")


@dataclass(frozen=True)
class Style:
    """Per-class appearance: ``palette[k]`` is class k's RGB colour in [-1, 1]; textures add zero-mean detail."""

    palette: np.ndarray  # K×3
    texture: tuple[str, ...]  # K texture kinds, from TEXTURES
    amplitude: np.ndarray  # K, texture strength
    frequency: np.ndarray  # K, stripe cycles per image
    angle: np.ndarray  # K, stripe orientation (radians)
    noise: np.ndarray  # K×3×8×8 low-resolution noise fields, bilinearly up-sampled at render time


def _rng(*key: int | str) -> np.random.Generator:
    """A generator keyed by a tuple (strings hashed stably, unlike ``hash``)."""
    ints = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng(ints)


def sample_style(rng: np.random.Generator, num_classes: int) -> Style:
    return Style(
        palette=rng.uniform(-0.75, 0.75, size=(num_classes, 3)),
        texture=tuple(rng.choice(TEXTURES, size=num_classes).tolist()),
        amplitude=rng.uniform(0.05, 0.2, size=num_classes),
        frequency=rng.uniform(3.0, 10.0, size=num_classes),
        angle=rng.uniform(0.0, np.pi, size=num_classes),
        noise=rng.standard_normal(size=(num_classes, 3, 8, 8)),
    )


def sample_labels(rng: np.random.Generator, num_classes: int, size: int) -> np.ndarray:
    """A size×size int64 label map: background 0, each foreground class drawn once, then extra shapes."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    extra = rng.integers(1, 4)
    classes = list(rng.integers(1, num_classes, size=extra)) + list(rng.permutation(np.arange(1, num_classes)))
    yy, xx = np.mgrid[0:size, 0:size] / size
    for k in classes:
        kind = rng.choice(["ellipse", "polygon", "stripes"], p=[0.45, 0.4, 0.15])
        cx, cy = rng.uniform(0.15, 0.85, size=2)
        if kind == "ellipse":
            rx, ry = rng.uniform(0.08, 0.3, size=2)
            box = [(cx - rx) * size, (cy - ry) * size, (cx + rx) * size, (cy + ry) * size]
            draw.ellipse(box, fill=int(k))
        elif kind == "polygon":
            n = rng.integers(3, 7)
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
            radii = rng.uniform(0.1, 0.3, size=n)
            pts = [
                ((cx + r * np.cos(a)) * size, (cy + r * np.sin(a)) * size) for a, r in zip(angles, radii, strict=True)
            ]
            draw.polygon(pts, fill=int(k))
        else:  # a band of parallel stripes across the whole image, drawn over everything so far
            theta, period = rng.uniform(0, np.pi), rng.uniform(0.2, 0.45)
            phase = (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 1)
            band = (phase % 1.0) < rng.uniform(0.15, 0.35)
            canvas = Image.fromarray(np.where(band, k, np.asarray(canvas)).astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
    return np.asarray(canvas).astype(np.int64)


def render(labels: np.ndarray, style: Style) -> np.ndarray:
    """Render a label map in a style: 3×H×W float32 in [-1, 1]."""
    size = labels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    noise = F.interpolate(torch.from_numpy(style.noise), size=(size, size), mode="bilinear", align_corners=False)
    noise = noise.numpy()
    out = np.zeros((3, size, size), dtype=np.float64)
    for k in np.unique(labels):
        mask = labels == k
        colour = style.palette[k][:, None]
        amp = style.amplitude[k]
        if style.texture[k] == "noise":
            detail = amp * noise[k][:, mask]
        elif style.texture[k] == "stripes":
            phase = 2 * np.pi * style.frequency[k] * (xx * np.cos(style.angle[k]) + yy * np.sin(style.angle[k]))
            detail = amp * np.broadcast_to(np.sin(phase[mask]), (3, int(mask.sum())))
        else:
            detail = 0.0
        out[:, mask] = colour + detail
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def edge_map(labels: np.ndarray) -> np.ndarray:
    """1 where a pixel's label differs from one of its 4-neighbours, else 0 (H×W float32)."""
    edges = np.zeros(labels.shape, dtype=bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= dy
    edges[:-1, :] |= dy
    edges[:, 1:] |= dx
    edges[:, :-1] |= dx
    return edges.astype(np.float32)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return (labels[None] == np.arange(num_classes)[:, None, None]).astype(np.float32)


class SyntheticPairs(Dataset):
    """One split of the synthetic dataset; samples follow the data contract of DESIGN.md.

    Args:
        split: ``train``, ``val`` or ``test``.
        image_size: 32 to 256 px.
        num_classes: K region classes, background included.
        input: ``edges`` (1-channel edge map, as CelebA-HQ edge-to-face) or ``labels`` (one-hot, as
            LSUN-Churches segmentation-to-image).
        sizes: number of scenes per split.
        seed: the dataset seed (separate from the training seed, so every run sees the same data).
    """

    name = "synthetic"

    def __init__(
        self,
        split: str = "train",
        image_size: int = 64,
        num_classes: int = 6,
        input: Literal["edges", "labels"] = "edges",
        sizes: dict[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        sizes = dict(sizes or {"train": 512, "val": 64, "test": 128})
        if split not in SPLIT_CODES:
            raise UserError(f"dataset.split={split!r} is not a split of the synthetic dataset; use train, val or test.")
        if not 32 <= image_size <= 256:
            raise UserError(
                f"dataset.image_size={image_size} is out of range; the synthetic dataset supports 32 to 256 px."
            )
        if input not in ("edges", "labels"):
            raise UserError(
                f"dataset.input={input!r} is not supported; use dataset.input=edges or dataset.input=labels."
            )
        if not 2 <= num_classes <= 32:
            raise UserError(f"dataset.num_classes={num_classes} is out of range; use 2 to 32 classes.")
        if sizes.get(split, 0) < 2:
            raise UserError(f"dataset.sizes.{split} must be at least 2 (an exemplar comes from another scene).")
        self.split, self.image_size, self.num_classes, self.input = split, image_size, num_classes, input
        self.length, self.seed = int(sizes[split]), seed
        self.spec = DataSpec(
            semantic_nc=1 if input == "edges" else num_classes,
            image_size=image_size,
            num_classes=num_classes,
            has_target=True,
        )

    def __len__(self) -> int:
        return self.length

    def exemplar_index(self, index: int) -> int:
        """The seeded pairing rule: another scene of the same split, fixed for every model and run."""
        offset = int(_rng(self.seed, SPLIT_CODES[self.split], index, "pair").integers(1, self.length))
        return (index + offset) % self.length

    def scene(self, index: int) -> tuple[np.ndarray, Style]:
        rng = _rng(self.seed, SPLIT_CODES[self.split], index, "scene")
        style = sample_style(rng, self.num_classes)
        return sample_labels(rng, self.num_classes, self.image_size), style

    def semantics(self, labels: np.ndarray) -> np.ndarray:
        return edge_map(labels)[None] if self.input == "edges" else one_hot(labels, self.num_classes)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        j = self.exemplar_index(index)
        labels, style = self.scene(index)
        ex_labels, ex_style = self.scene(j)
        return {
            "semantics": torch.from_numpy(self.semantics(labels)),
            "image": torch.from_numpy(render(labels, style)),
            "exemplar": torch.from_numpy(render(ex_labels, ex_style)),
            "exemplar_semantics": torch.from_numpy(self.semantics(ex_labels)),
            "target": torch.from_numpy(render(labels, ex_style)),
            "labels": torch.from_numpy(labels),
            "exemplar_labels": torch.from_numpy(ex_labels),
            "id": f"{self.split}_{index:05d}",
            "exemplar_id": f"{self.split}_{j:05d}",
        }

    @property
    def dataset_key(self) -> str:
        """Identifies the evaluation data for caches: everything that changes the images or the pairs."""
        return f"synthetic-k{self.num_classes}-s{self.seed}-n{self.length}-{self.split}-{self.image_size}px"

    def protocol(self) -> dict:
        return {
            "dataset": self.name,
            "split": self.split,
            "image_size": self.image_size,
            "input": self.input,
            "num_classes": self.num_classes,
            "pairing": f"seeded: exemplar = another scene of the split (dataset seed {self.seed})",
        }
