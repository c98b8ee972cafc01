"""DeepFashion In-shop, pose to person, as CoCosNet reads it (``dataset=deepfashion``).

Layout (CoCosNet's ``data/deepfashion_dataset.py``, https://github.com/microsoft/CoCosNet, and its README's
DeepFashion section)::

    <root>/img/<MEN|WOMEN>/<category>/<id>/<nn>_<k>_<view>.jpg       the In-shop photos (256 x 256)
    <root>/pose/<MEN|WOMEN>/<category>/<id>/<nn>_<k>_<view>_candidate.txt and ..._subset.txt
                                                                      OpenPose's result for each photo
    <root>/train.txt, <root>/val.txt                                  the split lists (one photo path a line)
    <root>/deepfashion_ref.txt, deepfashion_ref_test.txt, deepfashion_self_pair.txt   the pairing lists

Where the files come from: the photos are DeepFashion's In-shop Clothes Retrieval ``img/`` (Liu et al., CVPR 2016;
mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html); ``pose/``, ``train.txt``/``val.txt`` and the three pairing lists
are downloads linked from CoCosNet's README (its OpenPose results and retrieval pairs; the repository's ``data/``
holds only three-line excerpts). They are read from the root, never shipped here.

Lines name photos relative to the root, with ``\\`` or ``/`` (``img\\WOMEN\\Dresses\\id_00000244\\02_1_front.jpg``);
the split lists are read in their order (CoCosNet does not sort DeepFashion). A sample's id is its path under
``img/`` without the suffix, ``/`` written ``-`` (``WOMEN-Dresses-id_00000244-02_1_front``). A photo's pose files
are its path with ``img`` made ``pose`` and ``.jpg`` made ``_candidate.txt`` / ``_subset.txt``.

Input: CoCosNet's 20 channels (:mod:`midms.data.pose`): the OpenPose skeleton drawn in colour and 17 limb distance
maps, in [0, 1], built from the pose files at the photo's size, then resized to the load size (skeleton nearest,
distances bilinear). The photo is resized bicubically. Training: load 286, a random 256 crop, no flip (the README's
commands pass ``--no_flip``); evaluation at 256.

Pairing (CoCosNet's ``--video_like``, which the README's training and test commands pass): the exemplar of a photo
is the first entry of its line in ``deepfashion_self_pair.txt`` (other views of the same garment) when it has one,
else the *last* reference of its line in the pairing list (``deepfashion_ref_test.txt`` for evaluation,
``deepfashion_ref.txt`` for training); references may be any photo of the root. Training with
``real_reference_probability`` 0 (the README's command) takes that exemplar when it shows the same garment (same
folder, same ``<nn>`` prefix), flagged ``paired`` (CoCosNet's ``self_ref``: the paired-only losses apply), and the
photo itself otherwise (``same_garment_check: false``, DynaST's reader: that exemplar whenever the line has one,
flagged paired without the test); a draw below ``real_reference_probability`` takes the exemplar (or, below
``hard_reference_probability``, the line's second self-pair or a seeded other training photo: the official code's
random photo), unpaired. ``video_like: false`` is CoCosNet's other rule: the first reference of the line
(evaluation), the last one (training). Without the lists, a seeded other photo of the split (logged, recorded).

Region labels: the In-shop release has none and CoCosNet's protocol compares whole images (its semantic and style
metrics on DeepFashion). Human parsing maps of the photos, when you have them, give the region-wise metrics and the
matching accuracy: ``parsing=<folder under the root>`` with one 8-bit PNG of class ids a photo, at the photo's path
under ``img/`` (``.png``), and ``parsing_classes`` = the number of classes.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from midms.data.contract import DataSpec
from midms.data.images import (
    DatasetRootMissing,
    ExemplarPairs,
    Loaded,
    PairingList,
    photo_array,
    read_pairing_list,
    seeded_partner,
)
from midms.data.pose import KEYPOINT_RADIUS, POSE_CHANNELS, STICK_HALF_WIDTH, pose_files, pose_input, read_pose
from midms.errors import UserError
from midms.imageio import UnreadableFile, check_image, load_image

log = logging.getLogger(__name__)

SPLIT_LISTS = {"train": "train.txt", "val": "val.txt"}
PAIRING_LISTS = {"train": "deepfashion_ref.txt", "val": "deepfashion_ref_test.txt"}
SELF_PAIRS = "deepfashion_self_pair.txt"

LAYOUT = """\
  {root}/img/<MEN|WOMEN>/<category>/<id>/<nn>_<k>_<view>.jpg   (DeepFashion In-shop photos)
  {root}/pose/<MEN|WOMEN>/<category>/<id>/<nn>_<k>_<view>_candidate.txt, ..._subset.txt   (OpenPose results)
  {root}/train.txt, {root}/val.txt   (split lists)
  {root}/deepfashion_ref.txt, deepfashion_ref_test.txt, deepfashion_self_pair.txt   (pairing lists)
Photos: DeepFashion In-shop Clothes Retrieval (mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html). Pose results, split
and pairing lists: the links in the DeepFashion section of the README of github.com/microsoft/CoCosNet."""


def relative_path(name: str) -> str:
    """A list entry as a path relative to the root, ``/``-separated (the lists use Windows separators)."""
    return name.strip().replace("\\", "/")


def sample_id_of(rel: str) -> str:
    """``img/WOMEN/Dresses/id_1/02_1_front.jpg`` -> ``WOMEN-Dresses-id_1-02_1_front``."""
    parts = list(PurePosixPath(rel).with_suffix("").parts)
    return "-".join(parts[1:] if len(parts) > 1 and parts[0] == "img" else parts)


def same_garment(a: str, b: str) -> bool:
    """CoCosNet's test of a video-like pair: the same folder and the same ``<nn>`` before the first ``_``."""
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa.parent == pb.parent and pa.name.split("_")[0] == pb.name.split("_")[0]


def by_photo(listing: PairingList | None) -> dict[str, list[str]]:
    """A pairing list's references by photo, as relative paths."""
    if listing is None:
        return {}
    return {relative_path(query): [relative_path(ref) for ref in refs] for query, refs in listing.refs.items()}


def read_list(path: Path) -> list[list[str]]:
    """The comma-separated entries of each non-blank line, as relative paths."""
    return [[relative_path(x) for x in line.split(",")] for line in path.read_text().splitlines() if line.strip()]


class DeepFashion(ExemplarPairs):
    """One split of DeepFashion (``train`` or ``val``; ``test`` = ``val``) with CoCosNet's 20-channel pose input.

    Args: ``root`` (the folder of the layout above), ``split``, ``video_like`` (CoCosNet's pairing rule, above),
    ``same_garment_check`` (CoCosNet's test of a training pair; DynaST's reader has none), ``eval_video_like`` (the
    evaluation split's rule when it differs: CoCosNet v2 tests without ``--video_like``), ``pose_canvas``,
    ``pose_radius``, ``pose_stick`` (the skeleton drawn on a fixed square canvas with other widths: CoCosNet v2's
    DeepFashion-HD reader draws on 1024×1024 with 20 and 20; None, 4, 4: CoCosNet's, at the photo's size),
    ``parsing`` and ``parsing_classes`` (optional region labels), and the loading and pairing options of
    :class:`~midms.data.images.ExemplarPairs` (``flip`` false and ``real_reference_probability`` 0 as the README's
    commands).
    """

    name = "deepfashion"
    input_kind = "OpenPose skeleton + 17 limb distance maps (20 channels, CoCosNet)"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        video_like: bool = True,
        same_garment_check: bool = True,
        eval_video_like: bool | None = None,
        pose_canvas: int | None = None,
        pose_radius: int = KEYPOINT_RADIUS,
        pose_stick: int = STICK_HALF_WIDTH,
        parsing: str | None = None,
        parsing_classes: int | None = None,
        **options,
    ) -> None:
        super().__init__(root, split, **options)
        if not self.root.is_dir():
            raise DatasetRootMissing(
                f"DeepFashion not found: expected the folder {self.root} (dataset.root; by default "
                f"<paths.data_dir>/deepfashion, set MIDMS_DATA or paths.data_dir). Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        if parsing is not None and (not isinstance(parsing_classes, int) or parsing_classes < 2):
            raise UserError(
                f"dataset.parsing={parsing!r} needs dataset.parsing_classes, the number of classes of its label maps"
            )
        # CoCosNet v2 trains with --video_like and tests without it: eval_video_like (None: as video_like)
        self.video_like = video_like if self.train or eval_video_like is None else eval_video_like
        self.same_garment_check = same_garment_check
        self.pose_canvas, self.pose_radius, self.pose_stick = pose_canvas, pose_radius, pose_stick
        self.parsing = self.root / parsing if parsing else None
        self.parsing_classes = parsing_classes if parsing else None
        self.self_pairs: PairingList | None = None  # deepfashion_self_pair.txt (video-like pairing)
        self._rel: dict[str, str] = {}  # sample id -> relative photo path (the split's and any listed reference)
        self.ids = self._read_split()
        self._check_files(self.ids)
        self._finish_setup()

    # -- index ---------------------------------------------------------------------------------------------

    def _read_split(self) -> list[str]:
        listing = self.root / SPLIT_LISTS[self.split]
        if not listing.is_file():
            raise UserError(
                f"DeepFashion {self.split}: the split list {listing} is missing. Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        ids: list[str] = []
        for rel, *_rest in read_list(listing):
            sample_id = sample_id_of(rel)
            if sample_id in self._rel:
                log.warning("%s: %s is listed twice; using it once", listing, rel)
                continue
            self._rel[sample_id] = rel
            ids.append(sample_id)
        return ids

    def _check_files(self, ids: list[str]) -> None:
        """Missing photos or pose files are a layout error naming them (unreadable ones are skipped later)."""
        missing = [str(p) for sample_id in ids for p in self._required(sample_id) if not p.is_file()]
        if missing:
            shown = "\n  ".join(missing[:5])
            raise UserError(
                f"DeepFashion {self.split}: {len(missing)} listed file(s) are missing, e.g.\n  {shown}\n"
                "Expected layout:\n" + LAYOUT.format(root=self.root)
            )

    def photo_path(self, sample_id: str) -> Path:
        return self.root / self._rel[sample_id]

    def pose_stem(self, sample_id: str) -> Path:
        """``<root>/pose/.../<name>``: the photo's path with its ``img`` folder made ``pose``, without the suffix."""
        parts = list(PurePosixPath(self._rel[sample_id]).with_suffix("").parts)
        parts = ["pose" if part == "img" else part for part in parts]
        return self.root.joinpath(*parts)

    def parsing_path(self, sample_id: str) -> Path | None:
        if self.parsing is None:
            return None
        parts = list(PurePosixPath(self._rel[sample_id]).with_suffix(".png").parts)
        return self.parsing.joinpath(*(parts[1:] if parts[0] == "img" else parts))

    def _required(self, sample_id: str) -> list[Path]:
        parsing = self.parsing_path(sample_id)
        return [self.photo_path(sample_id), *pose_files(self.pose_stem(sample_id)), *([parsing] if parsing else [])]

    def files(self, sample_id: str, thorough: bool = True) -> list[Path]:
        return self._required(sample_id)

    def check_file(self, path: Path | str, full: bool = False) -> str | None:
        """Pose tables are parsed (a malformed one is unreadable), images decoded."""
        path = Path(path)
        if path.name.endswith("_subset.txt"):
            try:
                read_pose(path.with_name(path.name.removesuffix("_subset.txt")))
            except UnreadableFile as err:
                return err.reason if err.path == str(path) else None  # the candidate file is checked on its own
            return None
        if path.name.endswith("_candidate.txt"):
            if not path.is_file():
                return "missing"
            try:
                np.loadtxt(path, ndmin=1)
            except ValueError as err:
                return f"not a table of numbers ({err})"
            return None
        return check_image(path, full)

    def _ref_to_id(self, name: str) -> str | None:
        """A listed reference: any photo of the root with its pose files (CoCosNet reads it from the root)."""
        rel = relative_path(name)
        sample_id = sample_id_of(rel)
        if sample_id in self._rel:
            return sample_id if self._rel[sample_id] == rel else None
        self._rel[sample_id] = rel
        if all(p.is_file() for p in self._required(sample_id)):
            return sample_id
        del self._rel[sample_id]
        return None

    # -- pairing -------------------------------------------------------------------------------------------

    def default_pairing_file(self) -> Path:
        return self.root / PAIRING_LISTS[self.split]

    def _setup_pairs(self) -> None:
        n = len(self.ids)
        if n < 2:
            raise UserError(
                f"deepfashion split {self.split} at {self.root} has {n} readable sample(s); at least 2 are needed"
            )
        path = self._pairing_path()
        self.pairing = read_pairing_list(path) if path is not None else None
        self_pair_file = self.root / SELF_PAIRS
        self.self_pairs = read_pairing_list(self_pair_file) if self.video_like and self_pair_file.is_file() else None
        if self.video_like and path is not None and self.self_pairs is None:
            log.warning("deepfashion: %s is missing: no video-like pairs (CoCosNet's README links it)", self_pair_file)
        lines, self_pairs = by_photo(self.pairing), by_photo(self.self_pairs)
        self.pairs_from_file = self.pairs_seeded = self.missing_refs = 0
        self._refs, self._listed, self._same_garment = [], [], []
        for index, sample_id in enumerate(self.ids):
            rel = self._rel[sample_id]
            refs = self._references(rel, lines, self_pairs)
            self._listed.append(tuple(refs))
            first = self._resolve(refs[0]) if refs else None
            partner = self.ids[seeded_partner(self.seed, self.split, sample_id, index, n)]
            second = self._resolve(refs[1]) if len(refs) > 1 and rel in self_pairs else None
            if refs and first is None:
                self.missing_refs += 1
            if first is None:
                self.pairs_seeded += 1
            else:
                self.pairs_from_file += 1
            self._refs.append((first or partner, second or partner))
            self._same_garment.append(
                first is not None and (not self.same_garment_check or same_garment(rel, self._rel[first]))
            )
        if path is not None and self.pairs_seeded:
            log.warning(
                "deepfashion %s: %d of %d samples have no usable entry in %s (not listed or the reference missing); "
                "they use the seeded pairing instead",
                self.split,
                self.pairs_seeded,
                n,
                path,
            )

    def _references(self, rel: str, lines: dict[str, list[str]], self_pairs: dict[str, list[str]]) -> list[str]:
        """The photo's references, the exemplar first (the rule of the module docstring)."""
        if rel in self_pairs:
            return list(self_pairs[rel])
        listed = lines.get(rel, [])
        if not listed:
            return []
        if self.video_like or self.train:  # get_ref_video_like takes the line's last; get_ref_vgg trains on it
            return [listed[-1]]
        return list(listed)  # get_ref_vgg's evaluation: the first reference

    def _draw_exemplar(self, index: int, rng: np.random.Generator) -> tuple[str, bool]:
        first, hard = self._refs[index]
        if not self.train:
            return first, first == self.ids[index]
        p = float(rng.random())
        if p < self.real_p:
            return (hard if p < self.hard_p else first), False
        if self.video_like and self._same_garment[index]:
            return first, True
        return self.ids[index], True

    # -- samples -------------------------------------------------------------------------------------------

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            semantic_nc=POSE_CHANNELS, image_size=self.crop_size, num_classes=self.parsing_classes, has_target=False
        )

    def _load(self, sample_id: str) -> Loaded:
        image = load_image(self.photo_path(sample_id))
        candidate, subset = read_pose(self.pose_stem(sample_id))
        height, width = (self.pose_canvas, self.pose_canvas) if self.pose_canvas else (image.height, image.width)
        semantics = pose_input(candidate, subset, height, width, self.load_size, self.pose_radius, self.pose_stick)
        return Loaded(photo=photo_array(image, self.load_size), semantics=semantics, labels=self._labels(sample_id))

    def _labels(self, sample_id: str) -> np.ndarray | None:
        path = self.parsing_path(sample_id)
        if path is None:
            return None
        img = load_image(path, mode=None)
        if img.mode not in ("L", "P"):
            raise UnreadableFile(path, f"mode {img.mode}: a parsing map must be one channel of class ids (8-bit PNG)")
        labels = np.asarray(img.resize((self.load_size, self.load_size), Image.NEAREST))
        if labels.max() >= self.parsing_classes:
            raise UnreadableFile(path, f"class id {labels.max()}: expected 0..{self.parsing_classes - 1}")
        return labels

    def _semantics_tensor(self, semantics: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(semantics.astype(np.float32) / np.float32(255))  # ToTensor's division

    # -- records -------------------------------------------------------------------------------------------

    def pairing_description(self) -> str:
        if self.pairing is None:
            return f"seeded: exemplar = another photo of the split (dataset seed {self.seed})"
        files = f"file {self.pairing.path.name} (sha1 {self.pairing.sha1[:12]})"
        if self.self_pairs is not None:
            files += f" + {self.self_pairs.path.name} (sha1 {self.self_pairs.sha1[:12]})"
        rule = "video-like (CoCosNet --video_like)" if self.video_like else "first reference (evaluation)"
        if self.train:
            pair = "same-garment pair" if self.same_garment_check else "listed pair (no same-garment test)"
            rule += f", {pair} else self p>={self.real_p}"
        return f"{files}, {rule}"

    @property
    def dataset_key(self) -> str:
        digests = "".join(listing.sha1[:8] for listing in (self.pairing, self.self_pairs) if listing is not None)
        pairs = f"pairs{digests}" if digests else f"seed{self.seed}"
        rule = ("" if self.video_like else "-vgg") + ("" if self.same_garment_check or not self.train else "-nocheck")
        if (self.pose_canvas, self.pose_radius, self.pose_stick) != (None, KEYPOINT_RADIUS, STICK_HALF_WIDTH):
            rule += f"-pose{self.pose_canvas}r{self.pose_radius}s{self.pose_stick}"
        return f"{self.name}-{self.split}-{self.crop_size}px-n{len(self)}-{pairs}{rule}"
