"""Image files of the real datasets: robust loading, the papers' pre-processing and exemplar pairing.

Shared by the CelebA-HQ reader (:mod:`midms.data.celebahq`) and the LSUN-Churches reader
(:mod:`midms.data.lsun`). Both follow the data pipeline of CoCosNet (Zhang et al., "Cross-domain
Correspondence Learning for Exemplar-based Image Translation", CVPR 2020; github.com/microsoft/CoCosNet,
``data/pix2pix_dataset.py`` and ``data/base_dataset.py``), which MIDMs reuses with the same rules (Seo et al.,
"MIDMs: Matching Interleaved Diffusion Models for Exemplar-based Image Translation", AAAI 2023;
github.com/cvlab-kaist/MIDMs, ``data/``). What this module takes from them:

Pre-processing (CoCosNet's ``resize_and_crop``)
    Training: every photo and map is resized to ``load_size`` x ``load_size`` (photos bicubic, label maps
    and edge maps nearest, distance maps bilinear, so a non-square photo is squashed), then one random
    ``crop_size`` crop and one random horizontal flip are applied to the photo and its maps alike.
    The exemplar gets its own crop and flip. Evaluation: resize to ``crop_size``, no crop, no flip.

Exemplar pairing lists (``<name>_ref.txt`` for training, ``<name>_ref_test.txt`` for evaluation)
    One line per query photo: ``query.jpg,ref1.jpg[,ref2.jpg...]``, file names, references best first
    (found by image retrieval in CoCosNet). Evaluation uses the first reference. Training draws
    ``p ~ U[0, 1)`` per sample: ``p < hard_reference_probability`` (0.2) takes the *last* reference of the
    line (the "hard" one), ``p < real_reference_probability`` (0.7) the first, and otherwise the query
    photo itself is its own exemplar with a fresh crop and flip (CoCosNet's self-reference, about 30 %
    of training samples; it is recognisable here by ``exemplar_id == id``). Without a pairing list, a
    seeded rule fixes one partner per photo within the split (in place of both references; training keeps
    the self-reference share).

Robust loading (this suite's addition)
    An unreadable (corrupt, truncated) image never stops an epoch: the evaluation splits are scanned on
    construction (``verify_images``) and unreadable samples are left out; during training a sample whose
    file turns out unreadable is replaced by the next readable index; during evaluation such a pair is
    never replaced: it yields a :class:`SkippedPair`, which the evaluator counts with its id. All are logged
    as warnings and counted (``protocol()["skipped_images"]``, ``bad_files``); ``strict=True`` raises instead.
    Counts made inside DataLoader worker processes stay in the workers (their warnings still reach the log):
    the evaluation split's count is exact because it is scanned in the main process. Files that
    are *missing* (a wrong root, a label map not produced) are configuration errors: a
    :class:`~midms.errors.UserError` naming them, on construction.

Randomness
    Crops, flips and the training choice of reference come from a generator seeded per sample by one draw
    of torch's global generator. In DataLoader workers that generator is seeded by the loader (from its own
    ``generator``, which the datamodule seeds), so ``seed_everything(workers=True)`` or a seeded loader
    makes every batch reproducible, for any ``num_workers``; evaluation samples involve no randomness.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.imageio import UnreadableFile, check_image

log = logging.getLogger(__name__)

VERIFY_MODES = ("eval", "all", "none")
SPLITS = ("train", "val", "test")


class DatasetRootMissing(UserError):
    """The dataset's root folder does not exist (the message gives the layout and the sources)."""


@dataclass(frozen=True)
class SkippedPair:
    """What an evaluation split yields for a pair whose files cannot be read: never a substitute sample.

    The evaluation loader's :func:`collate_pairs` drops it from the batch and hands it to the evaluator,
    which counts it (with its id) in ``results.json``."""

    id: str
    exemplar_id: str
    reason: str


def collate_pairs(samples: list[Any]) -> dict[str, Any]:
    """``default_collate`` of the readable samples; the skipped ones under ``"skipped_pairs"``."""
    readable = [s for s in samples if not isinstance(s, SkippedPair)]
    batch = default_collate(readable) if readable else {}
    batch["skipped_pairs"] = [s for s in samples if isinstance(s, SkippedPair)]
    return batch


# ----------------------------------------------------------------------------------------------------------
# Loading and scanning


def scan_files(
    paths: Iterable[Path | str],
    desc: str = "checking images",
    workers: int | None = None,
    full: bool = False,
    check: Callable[..., str | None] = check_image,
) -> dict[str, str]:
    """Decode every file (threads; PIL releases the GIL) and return ``{path: reason}`` for the unreadable ones
    (``check(path, full=...)``: None or the reason; by default an image decode)."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    workers = workers or min(8, os.cpu_count() or 1)
    bad: dict[str, str] = {}
    chunk = 64 * workers  # a bounded number of pending futures, even for half a million masks
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(unique), desc=desc, unit="file", disable=None) as bar,
    ):
        for begin in range(0, len(unique), chunk):
            part = unique[begin : begin + chunk]
            for path, reason in zip(part, pool.map(partial(check, full=full), part), strict=True):
                if reason is not None:
                    bad[path] = reason
            bar.update(len(part))
    return bad


@dataclass
class BadFiles:
    """The unreadable files met so far (path -> reason); raises :class:`UserError` instead when ``strict``."""

    strict: bool = False
    records: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, reason: str, where: str) -> None:
        if self.strict:
            raise UserError(
                f"{where}: unreadable file {path} ({reason}). Replace or delete the file, or set "
                "dataset.strict=false to skip unreadable samples (they are counted in results.json under "
                "protocol.skipped_images)."
            )
        if path not in self.records:
            log.warning("%s: skipping unreadable file %s (%s)", where, path, reason)
        self.records[path] = reason

    def __len__(self) -> int:
        return len(self.records)


# ----------------------------------------------------------------------------------------------------------
# CoCosNet's resize_and_crop protocol on arrays


@dataclass(frozen=True)
class CropFlip:
    """Where the crop starts in the ``load_size`` frame, and whether to flip left-right afterwards."""

    x: int = 0
    y: int = 0
    flip: bool = False


def sample_crop_flip(rng: np.random.Generator, load_size: int, crop_size: int, flip: bool) -> CropFlip:
    """CoCosNet's ``get_params``: a uniform crop position and a fair-coin flip."""
    x = int(rng.integers(0, load_size - crop_size + 1))
    y = int(rng.integers(0, load_size - crop_size + 1))
    return CropFlip(x, y, bool(flip and rng.random() > 0.5))


def crop_flip(arr: np.ndarray, params: CropFlip, size: int) -> np.ndarray:
    """Crop the last two axes (H, W) to ``size`` at ``params`` and flip W when asked."""
    out = arr[..., params.y : params.y + size, params.x : params.x + size]
    if params.flip:
        out = out[..., ::-1]
    return np.array(out, order="C")  # a writable copy (decoded PIL arrays are read-only)


def photo_array(img: Image.Image, size: int) -> np.ndarray:
    """An RGB photo resized (bicubic, as CoCosNet's default transform) to size x size: 3×size×size uint8."""
    return np.asarray(img.resize((size, size), Image.BICUBIC)).transpose(2, 0, 1)


def photo_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 CHW -> float32 in [-1, 1] (ToTensor then Normalize(0.5, 0.5), as CoCosNet)."""
    return torch.from_numpy(arr.astype(np.float32) / np.float32(127.5) - np.float32(1.0))  # numpy: faster here


# ----------------------------------------------------------------------------------------------------------
# Pairing


@dataclass(frozen=True)
class PairingList:
    """A CoCosNet pairing list: query file name -> reference file names, best first."""

    path: Path
    refs: dict[str, tuple[str, ...]]
    sha1: str


def read_pairing_list(path: Path) -> PairingList:
    """Parse ``query.jpg,ref1.jpg[,ref2.jpg...]`` lines (blank lines ignored; a repeated query: the last line wins)."""
    data = path.read_bytes()
    refs: dict[str, tuple[str, ...]] = {}
    for number, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        items = [item.strip() for item in line.split(",")]
        if len(items) < 2 or not all(items):
            raise UserError(
                f"{path}, line {number}: expected 'query.jpg,ref1.jpg[,ref2.jpg...]' (CoCosNet's pairing-list "
                f"format), got {line!r}."
            )
        refs[items[0]] = tuple(items[1:])
    return PairingList(path=path, refs=refs, sha1=hashlib.sha1(data).hexdigest())


#: how a pairing list's references are used: CoCosNet's readers (and UNITE's, DynaST's) or MATEBIT's
REFERENCE_RULES = ("cocosnet", "matebit")


def choose_reference(p: float, refs: Sequence[str], real_probability: float, hard_probability: float) -> str | None:
    """CoCosNet's training rule for a draw ``p ~ U[0, 1)``: last ref, first ref, or None (self-reference)."""
    if p >= real_probability:
        return None
    return refs[-1] if p < hard_probability else refs[0]


def seeded_partner(seed: int, split: str, sample_id: str, index: int, n: int) -> int:
    """A fixed other index of the split for ``index``: the same for every model and run."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32(sample_id.encode())])
    return (index + int(rng.integers(1, n))) % n


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded numbers by value (``2.jpg`` before ``10.jpg``), as the official readers do."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ----------------------------------------------------------------------------------------------------------
# The shared reader


@dataclass
class Loaded:
    """One photo and its maps at load size, before crop and flip."""

    photo: np.ndarray  # 3×L×L uint8
    semantics: np.ndarray  # the reader's compact input semantics, last two axes L×L
    labels: np.ndarray | None  # L×L integer region labels (None: the dataset has none)


class ExemplarPairs(Dataset):
    """Base of the real-data readers: index, pairing, robust ``__getitem__``, ``protocol()`` and ``dataset_key``.

    A subclass validates its layout, sets ``self.ids`` (the split's sample ids, in evaluation order) and then
    calls :meth:`_finish_setup`; it implements :meth:`files`, :meth:`_load`, :meth:`_semantics_tensor`,
    :meth:`_ref_to_id` and :attr:`spec`.

    Args:
        root: the dataset's folder.
        split: ``train`` or ``val`` (``test`` = ``val``).
        image_size: the sample size, the crop of training (the papers: 256).
        load_size: the training resize before the random crop (the papers: 286); evaluation resizes to
            ``image_size``.
        flip: random horizontal flips in training.
        pairs: ``auto`` (the official pairing list in the root when present, else seeded), ``seeded``, or a path.
        real_reference_probability, hard_reference_probability: CoCosNet's training rule (0.7, 0.2).
        seed: the data's own seed (the seeded pairing).
        strict: raise on an unreadable image instead of skipping and counting it.
        verify_images: scan the photos on construction: ``eval`` (evaluation splits), ``all`` or ``none``.
    """

    name = ""
    input_kind = ""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        image_size: int = 256,
        load_size: int = 286,
        flip: bool = True,
        pairs: str | None = "auto",
        real_reference_probability: float = 0.7,
        hard_reference_probability: float = 0.2,
        seed: int = 0,
        strict: bool = False,
        verify_images: str = "eval",
        reference_rule: str = "cocosnet",
    ) -> None:
        if split not in SPLITS:
            raise UserError(
                f"split={split!r} is not a split of {self.name}; use train or val (test is an alias of val)."
            )
        crop_size = image_size
        if not 16 <= crop_size <= load_size:
            raise UserError(
                f"dataset.image_size={crop_size} and dataset.load_size={load_size}: need 16 <= image_size <= load_size "
                "(the papers load 286 and crop 256)."
            )
        for key, value in (("real", real_reference_probability), ("hard", hard_reference_probability)):
            if not 0.0 <= value <= 1.0:
                raise UserError(f"dataset.{key}_reference_probability={value} must lie in [0, 1].")
        if verify_images not in VERIFY_MODES:
            raise UserError(f"dataset.verify_images={verify_images!r}: use one of {', '.join(VERIFY_MODES)}.")
        if reference_rule not in REFERENCE_RULES:
            raise UserError(f"dataset.reference_rule={reference_rule!r}: use one of {', '.join(REFERENCE_RULES)}.")
        self.reference_rule = reference_rule
        self.root = Path(root).expanduser()
        self.split = "val" if split == "test" else split
        self.train = self.split == "train"
        self.crop_size, self.flip = crop_size, flip
        self.load_size = load_size if self.train else crop_size
        self.pairs_option = pairs
        self.real_p, self.hard_p = real_reference_probability, hard_reference_probability
        self.seed, self.verify_images = seed, verify_images
        self.bad_files = BadFiles(strict=strict)
        self.ids: list[str] = []
        self.pairing: PairingList | None = None
        self.pairs_from_file = self.pairs_seeded = self.missing_refs = 0
        self._refs: list[tuple[str, str]] = []  # per index: (first/easy exemplar id, last/hard exemplar id)
        self._scan_result: dict[str, str] | None = None
        self._scan_thorough = False
        self._unreadable_ids: set[str] = set()
        self.unreadable_pairs: list[str] = []  # evaluation: the inputs whose pair reads an unreadable file

    # -- to implement -------------------------------------------------------------------------------------

    @property
    def spec(self) -> DataSpec:
        raise NotImplementedError

    def files(self, sample_id: str, thorough: bool = True) -> list[Path]:
        """The files one sample reads (``thorough=False``: only the costly-to-lose ones, for the quick scan)."""
        raise NotImplementedError

    def _ref_to_id(self, name: str) -> str | None:
        """The sample id a pairing-list file name refers to (matched by stem), or None when that photo is absent."""
        raise NotImplementedError

    def _load(self, sample_id: str) -> Loaded:
        raise NotImplementedError

    def _semantics_tensor(self, semantics: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def default_pairing_file(self) -> Path:
        return self.root / f"{self.name}_ref{'' if self.train else '_test'}.txt"

    def check_file(self, path: Path | str, full: bool = False) -> str | None:
        """None when a file of :meth:`files` reads, else the reason (images: a decode)."""
        return check_image(path, full)

    # -- setup --------------------------------------------------------------------------------------------

    def _finish_setup(self) -> None:
        """Fix the exemplars, then scan (per ``verify_images``). Call at the end of the subclass constructor."""
        self._setup_pairs()
        if self.verify_images == "all" or (self.verify_images == "eval" and not self.train):
            self.scan(thorough=False)

    def _pairing_path(self) -> Path | None:
        option = self.pairs_option
        if option in (None, "", "seeded"):
            return None
        if option == "auto":
            path = self.default_pairing_file()
            return path if path.is_file() else None
        path = Path(str(option)).expanduser()
        if not path.is_file():
            raise UserError(
                f"dataset.pairs={option!r}: no such pairing list {path}. Use auto (take "
                f"{self.default_pairing_file()} when present), seeded, or the path of a CoCosNet pairing list."
            )
        return path

    def _setup_pairs(self) -> None:
        n = len(self.ids)
        if n < 2:
            raise UserError(
                f"{self.name} split {self.split} at {self.root} has {n} readable sample(s); at least 2 are needed "
                "(an exemplar is another photo)."
            )
        path = self._pairing_path()
        self.pairing = read_pairing_list(path) if path is not None else None
        self.pairs_from_file = self.pairs_seeded = self.missing_refs = 0
        self._refs = []
        self._listed: list[tuple[str, ...]] = []  # every reference of the pairing list, per sample
        by_id: dict[str, tuple[str, ...]] = {}
        if self.pairing is not None:
            for query, refs in self.pairing.refs.items():
                query_id = self._ref_to_id(query)
                if query_id is not None:
                    by_id[query_id] = refs
        for index, sample_id in enumerate(self.ids):
            listed = by_id.get(sample_id)
            self._listed.append(tuple(listed or ()))
            first = last = None
            if listed:
                # MATEBIT's readers evaluate on a line's second reference (its test phase draws the "easy" one,
                # val[1]); CoCosNet's on the first
                second = self.reference_rule == "matebit" and not self.train and len(listed) > 1
                first = self._resolve(listed[1] if second else listed[0])
                last = self._resolve(listed[-1]) if self.train else first
                self.missing_refs += int(first is None) + int(self.train and last is None and len(listed) > 1)
            if first is None or last is None:
                partner = self.ids[seeded_partner(self.seed, self.split, sample_id, index, n)]
                first, last = first or partner, last or partner
                self.pairs_seeded += 1
            else:
                self.pairs_from_file += 1
            self._refs.append((first, last))
        if self.pairing is not None and self.pairs_seeded:
            log.warning(
                "%s %s: %d of %d samples have no usable entry in %s (query not listed or its reference "
                "missing); they use the seeded pairing instead",
                self.name,
                self.split,
                self.pairs_seeded,
                n,
                self.pairing.path,
            )

    def _resolve(self, name: str) -> str | None:
        sample_id = self._ref_to_id(name)
        return None if sample_id is None or sample_id in self._unreadable_ids else sample_id

    def scan(self, thorough: bool = False) -> dict[str, str]:
        """Decode every file the split's samples and their exemplars read; leave out unreadable samples.

        ``thorough=False`` checks the photos and label maps but not CelebA-HQ's part masks (19 files a face):
        the quick scan done on construction. Returns ``{path: reason}``. A second call returns the first
        result unless it asks for a more thorough scan.
        """
        if self._scan_result is not None and (self._scan_thorough or not thorough):
            return dict(self._scan_result)
        ids = set(self.ids) | {ref for refs in self._refs for ref in refs}
        per_id = {sample_id: self.files(sample_id, thorough) for sample_id in sorted(ids)}
        paths = (p for paths in per_id.values() for p in paths)
        bad = scan_files(paths, desc=f"{self.name} {self.split}: checking", full=thorough, check=self.check_file)
        for path, reason in bad.items():
            self.bad_files.add(path, reason, f"{self.name} {self.split}")
        if bad:
            self._unreadable_ids |= {s for s, paths in per_id.items() if any(str(p) in bad for p in paths)}
            if self.train:  # training draws from the readable samples only (as queries or as exemplars)
                self.ids = [s for s in self.ids if s not in self._unreadable_ids]
                self._setup_pairs()
            else:  # evaluation keeps its pairs: one that reads an unreadable file is skipped and listed, not re-paired
                self.unreadable_pairs = [
                    self.ids[i]
                    for i in range(len(self.ids))
                    if self.ids[i] in self._unreadable_ids or self._refs[i][0] in self._unreadable_ids
                ]
                log.warning(
                    "%s %s: %d unreadable file(s); the %d evaluation pair(s) that read one are skipped and listed "
                    "in the record (no pair is re-paired)",
                    self.name,
                    self.split,
                    len(bad),
                    len(self.unreadable_pairs),
                )
        self._scan_result, self._scan_thorough = bad, thorough
        return dict(bad)

    # -- samples ------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def _rng(self, index: int) -> np.random.Generator:
        if not self.train:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def exemplar_id(self, index: int, rng: np.random.Generator | None = None) -> str:
        """The exemplar of sample ``index``: fixed for evaluation; drawn by CoCosNet's rule for training."""
        return self._draw_exemplar(index, rng if rng is not None else self._rng(index))[0]

    def _draw_exemplar(self, index: int, rng: np.random.Generator) -> tuple[str, bool]:
        """The exemplar of sample ``index`` and whether the photo is a ground truth for it (``paired``: CoCosNet's
        ``self_ref`` flag, which selects the samples of its paired-only losses): here, the photo itself."""
        first, last = self._refs[index]
        if not self.train:
            return first, first == self.ids[index]
        # CoCosNet draws the last reference as the hard one and the first as the easy one; MATEBIT the other way round
        refs = (last, first) if self.reference_rule == "matebit" else (first, last)
        choice = choose_reference(float(rng.random()), refs, self.real_p, self.hard_p)
        return (self.ids[index], True) if choice is None else (choice, False)

    def exemplar_candidates(self, index: int, k: int) -> list[str]:
        """``k`` distinct exemplars for evaluation sample ``index``: its pair's exemplar, the further references
        of the pairing list (readable ones, in order), then seeded partners of the split."""
        n, sample_id = len(self.ids), self.ids[index]
        if k > n - 1:
            return []
        found = [self.exemplar_id(index)]
        for name in self._listed[index]:
            resolved = self._resolve(name)
            if len(found) < k and resolved is not None and resolved not in found and resolved != sample_id:
                found.append(resolved)
        for draw in range(1, 1000 * k):
            if len(found) == k:
                break
            partner = self.ids[seeded_partner(self.seed, f"{self.split}:{draw}", sample_id, index, n)]
            if partner not in found:
                found.append(partner)
        return found

    def pair(self, index: int, exemplar_id: str) -> dict[str, Any] | SkippedPair:
        """Evaluation sample ``index`` with exemplar ``exemplar_id`` (a pair that cannot be read is skipped)."""
        try:
            return self._sample(index, exemplar_id)
        except UnreadableFile as err:
            self.bad_files.add(err.path, err.reason, f"{self.name} {self.split} pair {self.ids[index]}")
            return SkippedPair(self.ids[index], exemplar_id, f"{err.path}: {err.reason}")

    def _params(self, rng: np.random.Generator) -> CropFlip:
        if not self.train:
            return CropFlip()
        return sample_crop_flip(rng, self.load_size, self.crop_size, self.flip)

    def _sample(self, index: int, exemplar_id: str | None = None) -> dict[str, Any]:
        rng = self._rng(index)
        sample_id = self.ids[index]
        drawn, paired = self._draw_exemplar(index, rng)  # drawn even when given: the crops' random stream is the same
        if exemplar_id is not None and exemplar_id != drawn:
            paired = exemplar_id == sample_id
        exemplar_id = drawn if exemplar_id is None else exemplar_id
        query = self._load(sample_id)
        exemplar = query if exemplar_id == sample_id else self._load(exemplar_id)
        pq, pe = self._params(rng), self._params(rng)
        size = self.crop_size
        sample = {
            "semantics": self._semantics_tensor(crop_flip(query.semantics, pq, size)),
            "image": photo_tensor(crop_flip(query.photo, pq, size)),
            "exemplar": photo_tensor(crop_flip(exemplar.photo, pe, size)),
            "exemplar_semantics": self._semantics_tensor(crop_flip(exemplar.semantics, pe, size)),
            "paired": torch.tensor(paired),
            "id": sample_id,
            "exemplar_id": exemplar_id,
        }
        if query.labels is not None and exemplar.labels is not None:
            sample["labels"] = torch.from_numpy(crop_flip(query.labels, pq, size).astype(np.int64))
            sample["exemplar_labels"] = torch.from_numpy(crop_flip(exemplar.labels, pe, size).astype(np.int64))
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.ids)
        if not 0 <= index < n:
            raise IndexError(index)
        if not self.train:  # evaluation: the pair is skipped and counted, never replaced by another one
            return self.pair(index, self.exemplar_id(index))
        for step in range(n):
            try:
                return self._sample((index + step) % n)
            except UnreadableFile as err:  # never stop an epoch: take the next sample (strict: raise)
                self.bad_files.add(err.path, err.reason, f"{self.name} {self.split} sample {(index + step) % n}")
        raise UserError(f"{self.name} split {self.split} at {self.root}: no readable sample left.")

    # -- records ------------------------------------------------------------------------------------------

    def pairing_description(self) -> str:
        if self.pairing is None:
            return f"seeded: exemplar = another photo of the split (dataset seed {self.seed})"
        matebit = self.reference_rule == "matebit"
        if not self.train:
            rule = "second reference (MATEBIT)" if matebit else "first reference"
        elif matebit:
            rule = f"MATEBIT rule: first ref p<{self.hard_p}, last ref p<{self.real_p}, else self-reference"
        else:
            rule = f"CoCosNet rule: last ref p<{self.hard_p}, first ref p<{self.real_p}, else self-reference"
        return f"file {self.pairing.path.name} (sha1 {self.pairing.sha1[:12]}), {rule}"

    @property
    def dataset_key(self) -> str:
        """Identifies the evaluation data for caches: everything that changes the images or the pairs."""
        pairs = f"pairs{self.pairing.sha1[:8]}" if self.pairing is not None else f"seed{self.seed}"
        rule = "" if self.reference_rule == "cocosnet" else f"-{self.reference_rule}"
        return f"{self.name}-{self.split}-{self.crop_size}px-n{len(self)}-{pairs}{rule}"

    def protocol(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "split": self.split,
            "root": str(self.root),
            "image_size": self.crop_size,
            "load_size": self.load_size,
            "preprocess": "resize_and_crop + flip" if self.train else "resize",
            "input": self.input_kind,
            "num_classes": self.spec.num_classes,
            "pairing": self.pairing_description(),
            "pairs_from_file": self.pairs_from_file,
            "pairs_seeded": self.pairs_seeded,
            "missing_references": self.missing_refs,
            "skipped_images": len(self.bad_files),
            "bad_files": sorted(self.bad_files.records)[:50],
        }
