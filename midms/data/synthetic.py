"""The embedded default dataset: generated scenes with a ground-truth exemplar-based translation.

Each scene is a label map of ``num_classes`` classes (class 0 is the background; every foreground class
is drawn at least once, plus a few random extra shapes: ellipses, polygons, stripes) together with a
*style*: per class, a colour and a texture (flat, smooth noise or sinusoidal stripes). A sample pairs a
scene with the exemplar of another scene of the same split, so

- ``image``  = the scene's labels rendered in the scene's own style,
- ``exemplar`` = the other scene rendered in its own style,
- ``target`` = the scene's labels rendered in the *exemplar's* style: the ground-truth translation.

Each region's texture lives in the region's own frame (``texture_frame=region``, the default): it moves, turns
and grows with the region, so the target's texture at a point of a part is the exemplar's at the corresponding
point of the exemplar's part, and the whole ground truth is what a correct correspondence carries over (up to
what other parts hide in the exemplar). ``texture_frame=image`` fixes textures to the image grid instead: then a
pixel's texture depends on where it is, not on the part it belongs to, the target's texture is visible in the
exemplar only where the two layouts overlap, and copying the exemplar in place reproduces it there.

Everything is a pure function of ``(seed, split, index)``, so every model sees the same pairs and
nothing has to be downloaded. Scenes are drawn in a unit coordinate frame and rasterised at
``image_size``, so the same index gives the same scene at every resolution.

The ``edges`` input is the regions' outline drawn soft (:func:`soft_edge_map`): 1 on a boundary, falling to 0
over ``edge_falloff`` of the image side. A binary outline two pixels wide keeps an edge pixel in only about a
third of the 4×4 cells it crosses once sampled to a quarter of the resolution by nearest neighbour, as
MIDMs brings its input to the latent grid; the soft one (the default 1/16) keeps 97 % of them, as the distance
maps of CoCosNet's CelebA-HQ edge tensor keep the outline.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from scipy import ndimage
from torch import Tensor
from torch.utils.data import Dataset

from midms.data.contract import DataSpec
from midms.errors import UserError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TEXTURES = ("flat", "noise", "stripes")
TEXTURE_FRAMES = ("region", "image")


@dataclass(frozen=True)
class Style:
    """Per-class appearance: ``palette[k]`` is class k's RGB colour in [-1, 1]; textures add zero-mean detail."""

    palette: np.ndarray  # K×3
    texture: tuple[str, ...]  # K texture kinds, from TEXTURES
    amplitude: np.ndarray  # K, texture strength
    frequency: np.ndarray  # K, stripe cycles per image
    angle: np.ndarray  # K, stripe orientation (radians)
    noise: np.ndarray  # K×3×d×d low-resolution noise fields, bilinearly up-sampled at render time


def _rng(*key: int | str) -> np.random.Generator:
    """A generator keyed by a tuple (strings hashed stably, unlike ``hash``)."""
    ints = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng(ints)


def sample_style(
    rng: np.random.Generator,
    num_classes: int,
    strength: tuple[float, float] = (0.05, 0.2),
    detail: int = 8,
) -> Style:
    """A random style: texture amplitudes drawn from ``strength``; noise fields of ``detail``² cells."""
    return Style(
        palette=rng.uniform(-0.75, 0.75, size=(num_classes, 3)),
        texture=tuple(rng.choice(TEXTURES, size=num_classes).tolist()),
        amplitude=rng.uniform(*strength, size=num_classes),
        frequency=rng.uniform(3.0, 10.0, size=num_classes) * detail / 8,
        angle=rng.uniform(0.0, np.pi, size=num_classes),
        noise=rng.standard_normal(size=(num_classes, 3, detail, detail)),
    )


@dataclass(frozen=True)
class Frame:
    """Where a region's texture lives: a point ``p`` of the unit frame has the texture coordinates
    ``R(-angle) (p - centre) / scale + 0.5``, so the texture moves, turns and grows with the region. The
    default is the image's own frame (texture coordinates = image coordinates)."""

    centre: tuple[float, float] = (0.5, 0.5)
    angle: float = 0.0
    scale: float = 1.0

    def coordinates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.centre[0], y - self.centre[1]
        c, s = np.cos(self.angle), np.sin(self.angle)
        return (c * dx + s * dy) / self.scale + 0.5, (-s * dx + c * dy) / self.scale + 0.5


IMAGE_FRAME = Frame()


@dataclass(frozen=True)
class Part:
    """A class's shape archetype: what makes a region of class k recognisable from its outline alone."""

    shape: str  # one of FILLED_SHAPES or THIN_SHAPES
    home: tuple[float, float]  # centre in the unit frame (``layout=parts``)
    radius: float  # half-extent in the unit frame
    aspect: float  # height / width


FILLED_SHAPES = ("triangle", "rectangle", "diamond", "pentagon", "cross", "ellipse")
THIN_SHAPES = ("ring", "line")  # one to three pixels wide at 64 px
BODY = Part("ellipse", (0.5, 0.52), 0.42, 1.1)  # class 1: the large region the parts sit on (a face's skin)


def class_parts(num_classes: int, thin: bool = False) -> list[Part]:
    """Archetypes of classes 1..K-1 (index 0 is class 1). A pure function of the arguments, so every split
    and seed shares them: class 1 is the body, classes 2.. cycle through the shapes (thin ones too with
    ``thin``) around a ring inside the body; a shape that repeats comes back larger, so that shape and size
    together still tell the classes apart."""
    kinds = FILLED_SHAPES + (THIN_SHAPES if thin else ())
    parts = [BODY]
    n = max(num_classes - 2, 1)
    for i in range(num_classes - 2):
        angle = 2 * np.pi * i / n - np.pi / 2
        home = (0.5 + 0.24 * np.cos(angle), 0.52 + 0.24 * np.sin(angle))
        cycle = i // len(kinds)
        parts.append(Part(kinds[i % len(kinds)], home, 0.11 + 0.03 * cycle, 1.0 + 0.35 * (i % 2)))
    return parts


def _outline(shape: str, cx: float, cy: float, rx: float, ry: float, rot: float) -> list[tuple[float, float]]:
    """Polygon vertices (unit frame) of a filled shape, rotated by ``rot`` about its centre."""
    if shape == "triangle":
        angles = np.array([-90.0, 30.0, 150.0])
    elif shape == "rectangle":
        angles = np.array([-45.0, 45.0, 135.0, 225.0])
    elif shape == "diamond":
        angles = np.array([-90.0, 0.0, 90.0, 180.0])
    elif shape == "pentagon":
        angles = np.arange(5) * 72.0 - 90.0
    elif shape == "cross":  # a plus sign: twelve vertices
        a, b = 1.0, 0.36
        pts = [
            (b, a),
            (b, b),
            (a, b),
            (a, -b),
            (b, -b),
            (b, -a),
            (-b, -a),
            (-b, -b),
            (-a, -b),
            (-a, b),
            (-b, b),
            (-b, a),
        ]
        return _place(np.array(pts), cx, cy, rx, ry, rot)
    else:
        raise ValueError(shape)
    unit = np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], axis=1)
    if shape == "rectangle":
        unit = unit * np.sqrt(2)
    return _place(unit, cx, cy, rx, ry, rot)


def _place(unit: np.ndarray, cx: float, cy: float, rx: float, ry: float, rot: float) -> list[tuple[float, float]]:
    c, s = np.cos(rot), np.sin(rot)
    x, y = unit[:, 0] * rx, unit[:, 1] * ry
    return [(cx + c * u - s * v, cy + s * u + c * v) for u, v in zip(x, y, strict=True)]


def sample_layout(
    rng: np.random.Generator, num_classes: int, size: int, layout: str = "parts", thin: bool = False
) -> tuple[np.ndarray, list[Frame]]:
    """A size×size int64 label map: background 0, then every class's part (:func:`class_parts`) drawn once,
    the body first and smaller parts over larger ones; and each class's texture :class:`Frame` (the part's
    centre, its drawn rotation and its size against the archetype; the background's is the arrangement's
    shift and zoom in the ``parts`` layout and the image's in the ``scattered`` one).

    ``layout=parts``: like the parts of a roughly aligned face: the whole arrangement shifted (±0.12 of the
    frame) and scaled (×0.8–1.1), then each part jittered about its home (±0.05, size ×0.85–1.15, rotation
    ±17°); ``layout=scattered``: anywhere in the frame, at any rotation, so that
    only a part's shape says which class it is.
    """
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    parts = class_parts(num_classes, thin)
    order = sorted(range(len(parts)), key=lambda i: -parts[i].radius)  # stable: the body, then larger parts
    shift, zoom = rng.uniform(-0.12, 0.12, size=2), rng.uniform(0.8, 1.1)
    background = Frame((0.5 + shift[0], 0.5 + shift[1]), 0.0, zoom) if layout == "parts" else IMAGE_FRAME
    frames = [background] * num_classes
    for i in order:
        part, k = parts[i], i + 1
        scale = rng.uniform(0.85, 1.15)
        if layout == "parts":
            home = 0.5 + (np.asarray(part.home) - 0.5) * zoom + shift
            cx, cy = home + rng.uniform(-0.05, 0.05, size=2)
            scale *= zoom
            rot = rng.uniform(-0.3, 0.3)
        else:
            margin = part.radius * scale if i else 0.3
            cx, cy = rng.uniform(margin, 1 - margin, size=2) if margin < 0.5 else (0.5, 0.5)
            rot = rng.uniform(0, 2 * np.pi)
        rx, ry = part.radius * scale, part.radius * scale * part.aspect
        drawn_rotation = rot if part.shape not in ("ellipse", "ring") else 0.0  # ellipses are drawn upright
        frames[k] = Frame((float(cx), float(cy)), float(drawn_rotation), float(scale))
        box = [(cx - rx) * size, (cy - ry) * size, (cx + rx) * size, (cy + ry) * size]
        width = max(1, round(0.025 * size))
        if part.shape == "ellipse":
            draw.ellipse(box, fill=k)
        elif part.shape == "ring":
            draw.ellipse(box, outline=k, width=width)
        elif part.shape == "line":
            ends = _place(np.array([[-1.0, 0.0], [1.0, 0.0]]), cx, cy, rx * 1.5, ry, rot)
            draw.line([(x * size, y * size) for x, y in ends], fill=k, width=width)
        else:
            draw.polygon([(x * size, y * size) for x, y in _outline(part.shape, cx, cy, rx, ry, rot)], fill=k)
    return np.asarray(canvas).astype(np.int64), frames


def _sample_noise(field: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A 3×d×d noise field read bilinearly at texture coordinates (u, v) in [0, 1] (clamped at the border):
    3×N. At the pixel centres of the image frame this is the field's bilinear resize to the image."""
    grid = torch.from_numpy(np.stack([2 * u - 1, 2 * v - 1], -1)).reshape(1, 1, -1, 2)
    out = F.grid_sample(
        torch.from_numpy(field)[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0, :, 0].numpy()


def render(labels: np.ndarray, style: Style, frames: list[Frame] | None = None) -> np.ndarray:
    """Render a label map in a style: 3×H×W float32 in [-1, 1]. ``frames[k]`` is where class k's texture lives
    (:class:`Frame`); ``None``: every texture in the image's frame. The stripes' phase is taken at the pixels'
    corners, the noise field at their centres."""
    size = labels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((3, size, size), dtype=np.float64)
    for k in np.unique(labels):
        mask = labels == k
        frame = frames[k] if frames is not None else IMAGE_FRAME
        colour = style.palette[k][:, None]
        amp = style.amplitude[k]
        if style.texture[k] == "noise":
            u, v = frame.coordinates(xx[mask] + 0.5 / size, yy[mask] + 0.5 / size)
            detail = amp * _sample_noise(style.noise[k], u, v)
        elif style.texture[k] == "stripes":
            u, v = frame.coordinates(xx[mask], yy[mask])
            phase = 2 * np.pi * style.frequency[k] * (u * np.cos(style.angle[k]) + v * np.sin(style.angle[k]))
            detail = amp * np.broadcast_to(np.sin(phase), (3, int(mask.sum())))
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


def soft_edge_map(labels: np.ndarray, falloff: float) -> np.ndarray:
    """The edge map drawn soft: 1 on the boundary, falling linearly to 0 at ``falloff`` pixels (Euclidean
    distance to the nearest boundary pixel); ``falloff`` 0 gives the binary :func:`edge_map`."""
    edges = edge_map(labels)
    if falloff <= 0:
        return edges
    distance = ndimage.distance_transform_edt(edges == 0)
    return np.clip(1.0 - distance / falloff, 0.0, 1.0).astype(np.float32)


class Scene(NamedTuple):
    """A scene: its label map, its style and each class's texture frame (``None``: the image's frame)."""

    labels: np.ndarray
    style: Style
    frames: list[Frame] | None

    def render(self, style: Style | None = None) -> np.ndarray:
        """The scene's labels in ``style`` (default its own), each texture in its region's frame."""
        return render(self.labels, self.style if style is None else style, self.frames)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return (labels[None] == np.arange(num_classes)[:, None, None]).astype(np.float32)


class _DrawnScenes(dict):
    """The scenes drawn in this process (scene, rendering, edge map), keyed by their settings and index, and the
    bytes they take."""

    bytes = 0

    def put(self, key: tuple, value: tuple, size: int) -> None:
        self[key] = value
        self.bytes += size


_DRAWN = _DrawnScenes()


class SyntheticPairs(Dataset):
    """One split of the synthetic dataset; samples follow the data contract (midms/data/contract.py).

    Args:
        split: ``train``, ``val`` or ``test``.
        image_size: 32 to 256 px.
        num_classes: K region classes, background included.
        input: ``edges`` (1-channel edge map, as CelebA-HQ edge-to-face) or ``labels`` (one-hot, as
            LSUN-Churches segmentation-to-image).
        sizes: number of scenes per split.
        seed: the dataset seed (separate from the training seed, so every run sees the same data).
        layout: ``parts`` (each class near its home position, like an aligned face) or ``scattered`` (anywhere,
            any rotation: only a region's shape tells its class).
        thin: add thin classes (rings, lines one to three pixels wide) to the shapes.
        texture_strength: range of the texture amplitudes (noise, stripes) around each class's colour.
        texture_detail: cells per side of the noise fields (stripe frequencies scale with it): finer texture.
        texture_frame: ``region`` (each region's texture moves, turns and grows with the region: the target's
            texture is the exemplar's, carried over by the correspondence of their parts) or ``image`` (textures
            fixed to the image grid: a pixel's texture depends on where it is, not on its part).
        edge_falloff: ``input=edges``: the edge map falls from 1 on a boundary to 0 at this fraction of the
            image side (soft edges, as HED's, and as CoCosNet's CelebA-HQ tensor carries distance maps), so
            that a method working at a quarter of the resolution still sees every boundary; 0: binary edges.
        memory_cache_mb: each scene's labels, rendering and edge map are drawn once and kept in memory while the
            scenes this process keeps take at most this many MiB (shared by every instance with the same settings:
            the later epochs of a run and the other jobs of a sweep read them back; at 64 px a scene takes 68 KiB);
            0 draws every scene anew. The samples are the same either way.
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
        layout: Literal["parts", "scattered"] = "parts",
        thin: bool = False,
        texture_strength: tuple[float, float] = (0.05, 0.2),
        texture_detail: int = 8,
        texture_frame: Literal["region", "image"] = "region",
        edge_falloff: float = 1 / 16,
        memory_cache_mb: float = 384,
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
        if layout not in ("parts", "scattered"):
            raise UserError(f"dataset.layout={layout!r} is not supported; use dataset.layout=parts or scattered.")
        lo, hi = (float(v) for v in texture_strength)
        if not 0 <= lo <= hi <= 1:
            raise UserError(f"dataset.texture_strength={[lo, hi]} must be a range [low, high] within [0, 1].")
        if not 2 <= int(texture_detail) <= 64:
            raise UserError(f"dataset.texture_detail={texture_detail} is out of range; use 2 to 64 cells.")
        if texture_frame not in TEXTURE_FRAMES:
            raise UserError(
                f"dataset.texture_frame={texture_frame!r} is not supported; use dataset.texture_frame=region or image."
            )
        if not 0 <= float(edge_falloff) <= 0.25:
            raise UserError(
                f"dataset.edge_falloff={edge_falloff} is out of range; use 0 (binary edges) to 0.25 of the image side."
            )
        if sizes.get(split, 0) < 2:
            raise UserError(f"dataset.sizes.{split} must be at least 2 (an exemplar comes from another scene).")
        self.split, self.image_size, self.num_classes, self.input = split, image_size, num_classes, input
        self.length, self.seed = int(sizes[split]), seed
        self.layout, self.thin = layout, bool(thin)
        self.texture_strength, self.texture_detail = (lo, hi), int(texture_detail)
        self.texture_frame = texture_frame
        self.edge_falloff = float(edge_falloff)
        self._cache_limit = int(float(memory_cache_mb) * 2**20)
        # everything a drawn scene, its rendering and its edge map depend on (not the split's size or pairing); the
        # class too, as a subclass may draw its scenes otherwise
        drawing = (layout, self.thin, self.texture_strength, self.texture_detail, texture_frame, self.edge_falloff)
        self._scene_settings = (type(self), seed, split, image_size, num_classes, input, *drawing)
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

    def scene(self, index: int) -> Scene:
        rng = _rng(self.seed, SPLIT_CODES[self.split], index, "scene")
        style = sample_style(rng, self.num_classes, self.texture_strength, self.texture_detail)
        labels, frames = sample_layout(rng, self.num_classes, self.image_size, self.layout, self.thin)
        return Scene(labels, style, frames if self.texture_frame == "region" else None)

    def drawn(self, index: int) -> tuple[Scene, Tensor, Tensor]:
        """Scene ``index``, its rendering in its own style and its semantics (fresh tensors, the caller's to
        change), from the process's store of drawn scenes when it holds them (``memory_cache_mb``)."""
        key = (self._scene_settings, index)
        kept = _DRAWN.get(key)
        if kept is None:
            scene = self.scene(index)
            edges = self.semantics(scene.labels) if self.input == "edges" else None  # one-hot: cheaper redone
            image = torch.from_numpy(scene.render())
            scene = scene._replace(labels=scene.labels.astype(np.uint8))  # at most 32 classes: a quarter of the bytes
            kept = (scene, image, None if edges is None else torch.from_numpy(edges))
            size = scene.labels.nbytes + sum(t.nbytes for t in kept[1:] if t is not None)
            if _DRAWN.bytes + size <= self._cache_limit:
                _DRAWN.put(key, kept, size)
        scene, image, semantics = kept
        semantics = torch.from_numpy(self.semantics(scene.labels)) if semantics is None else semantics.clone()
        return scene, image.clone(), semantics

    def semantics(self, labels: np.ndarray) -> np.ndarray:
        if self.input == "edges":
            return soft_edge_map(labels, self.edge_falloff * self.image_size)[None]
        return one_hot(labels, self.num_classes)

    def exemplar_candidates(self, index: int, k: int) -> list[int]:
        """``k`` distinct exemplar scenes for ``index``: its own pair's first, then seeded further partners."""
        if k > self.length - 1:
            return []
        found = [self.exemplar_index(index)]
        for draw in range(1, 1000 * k):
            if len(found) == k:
                break
            offset = int(_rng(self.seed, SPLIT_CODES[self.split], index, "pair", draw).integers(1, self.length))
            if (index + offset) % self.length not in found:
                found.append((index + offset) % self.length)
        return found

    def appearance(self, index: int, style_of: int | None = None) -> dict[str, np.ndarray]:
        """What a perception network of this domain is taught to see (:mod:`midms.nn.domain_vgg`): scene ``index``
        rendered in the style of scene ``style_of`` of this split (default its own), with each pixel's class
        (``labels``, H×W), its region's colour (``colour``, 3×H×W), its texture kind (``texture``, H×W indices
        into :data:`TEXTURES`) and the texture's detail (``detail`` = image − colour, 3×H×W)."""
        scene = self.scene(index)
        style = scene.style if style_of is None else self.scene(style_of).style
        image = scene.render(style)
        colour = style.palette[scene.labels].transpose(2, 0, 1).astype(np.float32)
        kinds = np.array([TEXTURES.index(t) for t in style.texture], dtype=np.int64)
        return {"image": image, "labels": scene.labels.astype(np.int64), "colour": colour,
                "texture": kinds[scene.labels], "detail": image - colour}  # fmt: skip

    def pair(self, index: int, exemplar: int) -> dict:
        """The sample of scene ``index`` with the exemplar of scene ``exemplar`` (and its ground truth)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        scene, image, semantics = self.drawn(index)
        other, exemplar_image, exemplar_semantics = self.drawn(exemplar)
        return {
            "semantics": semantics,
            "image": image,
            "exemplar": exemplar_image,
            "exemplar_semantics": exemplar_semantics,
            "target": torch.from_numpy(scene.render(other.style)),
            "labels": torch.from_numpy(scene.labels.astype(np.int64)),
            "exemplar_labels": torch.from_numpy(other.labels.astype(np.int64)),
            "id": f"{self.split}_{index:05d}",
            "exemplar_id": f"{self.split}_{exemplar:05d}",
        }

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.pair(index, self.exemplar_index(index))

    @property
    def dataset_key(self) -> str:
        """Identifies the evaluation data for caches: everything that changes the images or the pairs."""
        variant = (
            f"{self.layout}{'-thin' if self.thin else ''}-t{self.texture_strength[0]:g}_{self.texture_strength[1]:g}"
        )
        variant += f"-d{self.texture_detail}-{self.texture_frame}frame"
        return f"synthetic-{variant}-k{self.num_classes}-s{self.seed}-n{self.length}-{self.split}-{self.image_size}px"

    def protocol(self) -> dict:
        return {
            "dataset": self.name,
            "split": self.split,
            "image_size": self.image_size,
            "input": self.input,
            "num_classes": self.num_classes,
            "layout": self.layout,
            "thin": self.thin,
            "texture_strength": list(self.texture_strength),
            "texture_detail": self.texture_detail,
            "texture_frame": self.texture_frame,
            "edge_falloff": self.edge_falloff if self.input == "edges" else None,
            "pairing": f"seeded: exemplar = another scene of the split (dataset seed {self.seed})",
        }
