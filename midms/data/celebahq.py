"""CelebA-HQ edge-to-face as CoCosNet and MIDMs use it (``dataset=celebahq``).

Layout (the CelebAMask-HQ release plus CoCosNet's split and pairing lists)::

    <root>/CelebA-HQ-img/<id>.jpg                                    photos, 1024 px; id = 0..29999, no padding
    <root>/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png  binary part masks (0/255), 512 px
    <root>/train.txt  <root>/val.txt                                 CoCosNet's random split: one id a line
    <root>/celebahq_ref.txt  <root>/celebahq_ref_test.txt            optional pairing lists: <id>.jpg,<ref>.jpg,...

Where the data come from: photos and masks are the CelebAMask-HQ release (Lee et al., "MaskGAN", CVPR 2020;
github.com/switchablenorms/CelebAMask-HQ). ``train.txt``, ``val.txt`` and the two pairing lists are linked
from the "Training" section of the CoCosNet README (github.com/microsoft/CoCosNet); MIDMs (README,
"Datasets") uses the same files. ``python -m midms.data.check dataset=celebahq`` verifies a copy.

Splits: ``train`` reads ``train.txt``; ``val`` reads ``val.txt``, the set both papers evaluate on
(CoCosNet's test phase reads ``val.txt``); ``test`` is an alias of ``val``.

Input semantics: the 15-channel edge tensor that CoCosNet builds on the fly in ``get_label_tensor`` of
``data/celebahqedge_dataset.py`` (MIDMs' file of the same name is identical). Read from that code, at the
load size (286 for training, 256 for evaluation), before the crop and flip:

- the 13 parts, in this order: skin, l_brow, r_brow, l_eye, r_eye, l_ear, r_ear, nose, u_lip, mouth, l_lip,
  eye_g, hair (not neck, hat, ear_r, neck_l, cloth), each mask resized with nearest neighbours;
- a part's *boundary*: the pixels whose mask value differs from a 4-neighbour's, on both sides of the change;
- channel 0: the union of the 13 boundaries, united with the Canny edges (scikit-image ``canny``, default
  parameters) of the grey photo (resized bilinearly) kept only outside the non-hair parts: a pixel of the
  hair mask keeps its Canny edge even where another part overlaps it; by default (``canny=official``) the
  Canny of scikit-image 0.14.2, the version CoCosNet pins, which smooths in uint8 (:mod:`midms.data.canny`);
  ``canny=current`` uses today's;
- channels 1-13: per part, in the order above, the L1 (city-block) distance to that part's boundary,
  ``min(floor(d / 3), 255) / 255`` (the official code divides by 3, stores uint8 and ``ToTensor`` divides by
  255: the maps saturate at 765 px, they do not clip at 3 px); a part without a mask file, or whose mask has
  no boundary, gives 1 everywhere (OpenCV's distance to a missing boundary saturates);
- channel 14: the union of the boundaries alone.

Channels 0 and 14 are in {0, 1}. The official code uses OpenCV's ``distanceTransform(DIST_L1, 3)``, which is
the exact city-block distance: :func:`scipy.ndimage.distance_transform_cdt` with ``metric="taxicab"`` gives
the same values. The boundary rule is a 4-neighbour comparison: identical to scikit-image's
``find_boundaries(mask, connectivity=1, mode="thick")`` (the tests check this) and 30 times faster.

``labels``: the CelebAMask-HQ face-parsing map (19 classes, 0 = background), made as the dataset's own
``face_parsing/Data_preprocessing/g_mask.py`` makes it: parts in the order of :data:`FACE_PARTS`, later parts
painted over earlier ones, class = position + 1, except that glasses are not painted (class 3 stays unused):
the label maps the semantic and style metrics' reference scripts read (UNITE's and MATEBIT's, and CoCosNet v2's
mask-to-face data) are ``CelebAMask-HQ-mask-anno/all_parts_except_glasses``, "the parsing mask except glasses",
so a pixel under glasses keeps the part painted there (skin, an eye, a brow).

Pre-processing and pairing follow CoCosNet (see :mod:`midms.data.images`): training loads 286, crops 256 and
flips (the same crop and flip on the photo, its edge tensor and labels); evaluation resizes to 256; pairing
lists are honoured, otherwise a seeded pairing within the split. The references of the official lists may
lie in either split (the photos share one folder).

Cost: building the tensor costs tens of ms a face (19 PNG masks, Canny, 13 distance transforms), twice a
sample; with ``cache_dir`` the uint8 tensor and labels are stored as a compressed ``.npz`` per id, keyed by
load size, root and the source files' names, sizes and modification times, so an edited mask or photo is
never served its old tensor (``benchmarks/perf_celebahq_edges.py`` measures both). Entries of files that
changed stay behind: delete the cache folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from midms.data.canny import CANNY_MODES, canny_edges
from midms.data.contract import DataSpec
from midms.data.images import DatasetRootMissing, ExemplarPairs, Loaded, photo_array
from midms.errors import UserError
from midms.files import atomic_write
from midms.imageio import UnreadableFile, load_image

log = logging.getLogger(__name__)

#: The 13 parts of CoCosNet's edge tensor, in its channel order (``inner_parts`` of celebahqedge_dataset.py).
INNER_PARTS = (
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "nose",
    "u_lip",
    "mouth",
    "l_lip",
    "eye_g",
    "hair",
)
#: The 18 parts of CelebAMask-HQ in the order of its g_mask.py: label k + 1 for FACE_PARTS[k].
FACE_PARTS = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
FACE_CLASSES = ("background", *FACE_PARTS)
SEMANTIC_NC = 2 + len(INNER_PARTS)  # 15
CACHE_VERSION = "edges15-v2"  # v2: label maps without glasses

LAYOUT = """\
  {root}/CelebA-HQ-img/<id>.jpg                                    (photos)
  {root}/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png  (part masks)
  {root}/train.txt, {root}/val.txt                                 (one id a line)
  {root}/celebahq_ref.txt, {root}/celebahq_ref_test.txt            (optional pairing lists)
Photos and masks: CelebAMask-HQ (github.com/switchablenorms/CelebAMask-HQ). train.txt, val.txt and the
pairing lists: the CoCosNet README, section Training (github.com/microsoft/CoCosNet)."""


def part_boundaries(mask: np.ndarray) -> np.ndarray:
    """Pixels whose value differs from one of their 4-neighbours', both sides marked (CoCosNet's ``get_edges``)."""
    edges = np.zeros(mask.shape, dtype=bool)
    dx = mask[:, 1:] != mask[:, :-1]
    dy = mask[1:, :] != mask[:-1, :]
    edges[:, 1:] |= dx
    edges[:, :-1] |= dx
    edges[1:, :] |= dy
    edges[:-1, :] |= dy
    return edges


def boundary_distance(boundary: np.ndarray) -> np.ndarray:
    """CoCosNet's distance channel as uint8: ``min(floor(L1 distance to boundary / 3), 255)``; 255 without one."""
    if not boundary.any():
        return np.full(boundary.shape, 255, dtype=np.uint8)
    distance = ndimage.distance_transform_cdt(~boundary, metric="taxicab")
    return np.minimum(distance // 3, 255).astype(np.uint8)


def edge_tensor(masks: Mapping[str, np.ndarray], grey: np.ndarray, canny: str = "official") -> np.ndarray:
    """CoCosNet's 15-channel edge tensor, ×255 as uint8 (15×H×W).

    Args:
        masks: part name -> H×W uint8 mask (255 inside) at the load size; absent parts are left out.
        grey: H×W uint8 grey photo at the load size (Canny's input).
        canny: ``official`` (scikit-image 0.14.2, which CoCosNet pins) or ``current`` (:mod:`midms.data.canny`).
    """
    shape = grey.shape
    boundaries = np.zeros(shape, dtype=bool)
    keep_canny = np.ones(shape, dtype=bool)  # outside the non-hair parts; hair last, so it wins over overlaps
    distances = np.full((len(INNER_PARTS), *shape), 255, dtype=np.uint8)
    for k, part in enumerate(INNER_PARTS):
        mask = masks.get(part)
        if mask is None:
            continue
        if part == "hair":
            keep_canny |= mask == 255
        else:
            keep_canny &= mask != 255
        boundary = part_boundaries(mask)
        boundaries |= boundary
        distances[k] = boundary_distance(boundary)
    out = np.empty((SEMANTIC_NC, *shape), dtype=np.uint8)
    out[0] = (boundaries | (canny_edges(grey, canny) & keep_canny)) * np.uint8(255)
    out[1:-1] = distances
    out[-1] = boundaries * np.uint8(255)
    return out


#: parts left out of the label maps, as in ``all_parts_except_glasses`` (module docstring)
UNLABELLED_PARTS = ("eye_g",)


def face_labels(masks: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The CelebAMask-HQ parsing map (uint8, 0 = background): later parts of FACE_PARTS paint over earlier ones;
    glasses are not painted (:data:`UNLABELLED_PARTS`)."""
    labels = np.zeros(shape, dtype=np.uint8)
    for k, part in enumerate(FACE_PARTS, start=1):
        mask = masks.get(part)
        if mask is not None and part not in UNLABELLED_PARTS:
            labels[mask != 0] = k
    return labels


class CelebAHQEdges(ExemplarPairs):
    """One split of CelebA-HQ edge-to-face; samples follow the data contract (midms/data/contract.py).

    Args:
        root: the folder of the layout above.
        split: ``train`` or ``val`` (``test`` = ``val``).
        cache_dir: where to keep computed edge tensors (None: compute every time).
        canny: the Canny of channel 0: ``official`` (scikit-image 0.14.2, as the released models saw it) or
            ``current`` (today's scikit-image).
        options: the loading and pairing options of :class:`midms.data.images.ExemplarPairs`.
    """

    name = "celebahq"
    input_kind = "CoCosNet 15-channel edges (edges+canny, 13 part distance maps, part edges)"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cache_dir: str | Path | None = None,
        canny: str = "official",
        **options,
    ) -> None:
        if canny not in CANNY_MODES:
            raise UserError(f"dataset.canny={canny!r} is not supported; use one of {', '.join(CANNY_MODES)}.")
        self.canny = canny
        super().__init__(root, split, **options)
        self.image_dir = self.root / "CelebA-HQ-img"
        self.mask_dir = self.root / "CelebAMask-HQ-mask-anno"
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._check_layout()
        self._photos = frozenset(os.listdir(self.image_dir))
        self.ids = self._read_split()
        self._finish_setup()

    # -- layout -------------------------------------------------------------------------------------------

    def _check_layout(self) -> None:
        layout = LAYOUT.format(root=self.root)
        if not self.root.is_dir():
            raise DatasetRootMissing(
                f"CelebA-HQ not found: expected the folder {self.root} (dataset.root; by default "
                f"<paths.data_dir>/celebahq, set MIDMS_DATA or paths.data_dir). Expected layout:\n{layout}"
            )
        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise UserError(f"CelebA-HQ at {self.root}: the folder {folder} is missing. Expected layout:\n{layout}")

    def _read_split(self) -> list[str]:
        path = self.root / ("train.txt" if self.train else "val.txt")
        if not path.is_file():
            raise UserError(
                f"CelebA-HQ split file {path} is missing: CoCosNet's train.txt and val.txt (one id a line) are "
                f"linked from its README, section Training (github.com/microsoft/CoCosNet). Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        ids: list[str] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                raise UserError(f"{path}, line {number}: expected a CelebA-HQ id (an integer), got {text!r}.")
            ids.append(str(int(text)))
        missing = [self.photo_path(i) for i in ids if self.photo_name(i) not in self._photos]
        if missing:
            shown = "\n  ".join(str(p) for p in missing[:5])
            raise UserError(
                f"CelebA-HQ at {self.root}: {len(missing)} photo(s) listed in {path.name} are missing, "
                f"e.g.\n  {shown}\nCheck dataset.root and that CelebA-HQ-img holds the full CelebAMask-HQ release."
            )
        return ids

    def photo_path(self, sample_id: str) -> Path:
        return self.image_dir / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str, part: str) -> Path:
        number = int(sample_id)
        return self.mask_dir / str(number // 2000) / f"{number:05d}_{part}.png"

    def files(self, sample_id: str, thorough: bool = True) -> list[Path]:
        paths = [self.photo_path(sample_id)]
        if thorough:  # parts a face lacks have no file; a face with no mask at all is reported as missing skin
            masks = [p for p in (self.mask_path(sample_id, part) for part in FACE_PARTS) if p.is_file()]
            paths += masks or [self.mask_path(sample_id, "skin")]
        return paths

    def photo_name(self, sample_id: str) -> str:
        return f"{sample_id}.jpg"

    def _ref_to_id(self, name: str) -> str | None:
        stem = Path(name).stem
        if not stem.isdigit():
            return None
        sample_id = str(int(stem))
        return sample_id if self.photo_name(sample_id) in self._photos else None

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            semantic_nc=SEMANTIC_NC, image_size=self.crop_size, num_classes=len(FACE_CLASSES), has_target=False
        )

    # -- loading ------------------------------------------------------------------------------------------

    def masks(self, sample_id: str, size: int) -> dict[str, np.ndarray]:
        """The part masks of a face, resized (nearest) to size x size; parts without a file are left out."""
        out: dict[str, np.ndarray] = {}
        for part in FACE_PARTS:
            path = self.mask_path(sample_id, part)
            if path.is_file():
                out[part] = np.asarray(load_image(path, "L").resize((size, size), Image.NEAREST))
        if not out:
            raise UnreadableFile(self.mask_path(sample_id, "skin"), "no part mask at all for this face")
        return out

    def _cache_path(self, sample_id: str) -> Path | None:
        """``<cache>/<version>-<load size>px-<root>/<id>-<sources>.npz``: ``sources`` fingerprints the photo and
        the part masks the tensor is made from (names, sizes, modification times), so an edited or replaced
        file gets a new entry and never the old tensor."""
        if self.cache_dir is None:
            return None
        root_tag = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]
        # one stat per file (a part a face lacks is fingerprinted as missing): this runs for every sample
        sources = [self.photo_path(sample_id), *(self.mask_path(sample_id, part) for part in FACE_PARTS)]
        name = f"{sample_id}-{source_fingerprint(sources)}.npz"
        return self.cache_dir / f"{CACHE_VERSION}-canny_{self.canny}-{self.load_size}px-{root_tag}" / name

    def _read_cache(self, path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
        if path is None or not path.is_file():
            return None
        size = self.load_size
        try:
            with np.load(path) as data:
                semantics, labels = data["semantics"], data["labels"]
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable cache file %s (%s)", path, err)
            return None
        if semantics.shape != (SEMANTIC_NC, size, size) or labels.shape != (size, size):
            return None
        return semantics, labels

    def _write_cache(self, path: Path | None, semantics: np.ndarray, labels: np.ndarray) -> None:
        if path is None:
            return
        try:  # atomic: workers writing the same id never leave a partial file
            atomic_write(path, lambda f: np.savez_compressed(f, semantics=semantics, labels=labels))
        except OSError as err:
            log.warning("cannot write the edge cache %s (%s); computing edges without it", path, err)
            self.cache_dir = None

    def edges_and_labels(self, sample_id: str, photo: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 15-channel tensor and the parsing labels at the load size (from the cache when there)."""
        cache = self._cache_path(sample_id)
        cached = self._read_cache(cache)
        if cached is not None:
            return cached
        size = self.load_size
        masks = self.masks(sample_id, size)
        grey = np.asarray(photo.resize((size, size), Image.BILINEAR).convert("L"))
        semantics, labels = edge_tensor(masks, grey, self.canny), face_labels(masks, (size, size))
        self._write_cache(cache, semantics, labels)
        return semantics, labels

    def _load(self, sample_id: str) -> Loaded:
        photo = load_image(self.photo_path(sample_id))
        semantics, labels = self.edges_and_labels(sample_id, photo)
        return Loaded(photo=photo_array(photo, self.load_size), semantics=semantics, labels=labels)

    def _semantics_tensor(self, semantics: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(semantics.astype(np.float32) / np.float32(255.0))

    def protocol(self) -> dict:
        return {
            **super().protocol(),
            "canny": "scikit-image 0.14.2 (official)" if self.canny == "official" else "today's scikit-image",
            "cache": str(self.cache_dir) if self.cache_dir else None,
        }


def source_fingerprint(paths: Sequence[Path]) -> str:
    """12 hex digits naming the files ``paths`` as they are now: name, size and modification time each."""
    h = hashlib.sha1()
    for path in paths:
        try:
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        except OSError:
            h.update(f"{path.name}:missing;".encode())
    return h.hexdigest()[:12]
