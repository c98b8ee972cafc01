"""LSUN-Churches segmentation-to-image as MIDMs uses it (``dataset=lsun_church``), and the LMDB export.

Layout (ADE20K-style, as CoCosNet's ``data/ade20k_dataset.py`` and MIDMs' ``data/lsun_church_dataset.py``
read it)::

    <root>/training/**/<key>.jpg|.webp     photos (searched recursively)
    <root>/training/**/<key>.png           the photo's label map, same folder and stem
    <root>/validation/**/...               the same for the evaluation split
    <root>/lsun_church_ref.txt  <root>/lsun_church_ref_test.txt   optional pairing lists: <key>.jpg,<ref>.jpg,...

Where the data come from:

- Photos: the LSUN release (Yu et al., 2015; github.com/fyu/lsun) ships ``church_outdoor_train_lmdb``
  (126,227 photos) and ``church_outdoor_val_lmdb`` (300 photos) as LMDB databases: keys are the photo ids
  (40 hex digits), values the encoded photos (WebP). Write them out with::

      python -m midms.data.lsun export church_outdoor_train_lmdb <root>/training
      python -m midms.data.lsun export church_outdoor_val_lmdb <root>/validation

  The export keeps the encoded bytes unchanged (no second lossy compression; a byte-exact copy of the
  release) and names each file by its key with the extension of its real format: ``<key>.webp`` for the
  official release, ``<key>.jpg`` for JPEG values; values in another format (e.g. PNG, which would clash
  with the label maps) are re-encoded as lossless WebP. The reader matches photos by stem, so pairing lists
  that name ``<key>.jpg`` (MIDMs' lists, written for fyu/lsun's ``save`` command, which keeps the WebP
  bytes under a ``.jpg`` name) find ``<key>.webp``. The export is resumable (files already written are
  skipped) and atomic per file.
- Label maps: LSUN has none. **You produce them** with a semantic segmentation network trained on ADE20K
  (the papers use such a network's predictions as the input domain; e.g. the UPerNet models of
  github.com/CSAILVision/semantic-segmentation-pytorch), and save one 8-bit single-channel PNG per photo in
  the ADE20K annotation convention: 0 = unknown/other, k = ADE20K class k (1..150). Networks that predict
  0..149 need +1. A missing label map is an error naming the file.
- Pairing lists: MIDMs ships ``data/lsun_church_ref_test.txt`` (github.com/cvlab-kaist/MIDMs); put it in the
  root. References are looked up among the photos of the query's split, as MIDMs does.

Splits: ``train`` = ``training/``, ``val`` = ``validation/`` (``test`` is an alias of ``val``). Photos are
sorted in natural order.

Input semantics: one-hot labels with 151 channels, as CoCosNet's ``label_nc=150`` with
``contain_dontcare_label``: channel k for label k (0..150); the value 255 (don't care) goes to channel 150
as CoCosNet's ``get_label_tensor`` maps it. ``labels`` is that label map (int64). Other values (151..254)
make the label file unreadable (skipped and counted). Pre-processing and pairing: :mod:`midms.data.images`.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from midms.data.contract import DataSpec
from midms.data.images import DatasetRootMissing, ExemplarPairs, Loaded, natural_key, photo_array
from midms.errors import UserError
from midms.files import atomic_write_bytes
from midms.imageio import IMAGE_SUFFIXES, UnreadableFile, load_image

log = logging.getLogger(__name__)

LABEL_NC = 150  # ADE20K classes
SEMANTIC_NC = LABEL_NC + 1  # + "unknown" (0) / don't care (255 -> 150), CoCosNet's contain_dontcare_label
FOLDERS = {"train": "training", "val": "validation"}
LABEL_MODES = ("L", "P", "I", "I;16")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

LAYOUT = """\
  {root}/training/**/<key>.jpg|.webp   and   {root}/training/**/<key>.png   (photo and its label map)
  {root}/validation/**/...             (the same for the evaluation split)
  {root}/lsun_church_ref.txt, {root}/lsun_church_ref_test.txt   (optional pairing lists)
Photos: LSUN church_outdoor_{{train,val}}_lmdb (github.com/fyu/lsun), written out with
`python -m midms.data.lsun export <lmdb> <root>/training` (and validation). Label maps: run an ADE20K
segmentation network on the photos (see midms/data/lsun.py). Pairing list: lsun_church_ref_test.txt from
github.com/cvlab-kaist/MIDMs (data/)."""


class LSUNChurch(ExemplarPairs):
    """One split of LSUN-Churches segmentation-to-image; samples follow the data contract (midms/data/contract.py).

    Args: ``root`` (the folder of the layout above), ``split`` (``train`` or ``val``) and the loading and pairing
    options of :class:`midms.data.images.ExemplarPairs` (no edge cache: one-hot is cheap).
    """

    name = "lsun_church"
    input_kind = "one-hot ADE20K labels (151 channels)"

    def __init__(self, root: str | Path, split: str = "train", **options) -> None:
        super().__init__(root, split, **options)
        self.folder = self.root / FOLDERS[self.split]
        if not self.root.is_dir():
            raise DatasetRootMissing(
                f"LSUN-Churches not found: expected the folder {self.root} (dataset.root; by default "
                f"<paths.data_dir>/lsun_church, set MIDMS_DATA or paths.data_dir). Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        if not self.folder.is_dir():
            raise UserError(
                f"LSUN-Churches at {self.root}: the split folder {self.folder} is missing. Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        self._photos = self._index()
        self.ids = sorted(self._photos, key=lambda s: natural_key(str(self._photos[s].relative_to(self.folder))))
        self._finish_setup()

    def _index(self) -> dict[str, Path]:
        photos: dict[str, Path] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if path.stem in photos:
                log.warning("%s: two photos named %s; using %s", self.folder, path.stem, photos[path.stem])
                continue
            photos[path.stem] = path
        if not photos:
            raise UserError(
                f"LSUN-Churches: no photo ({', '.join(IMAGE_SUFFIXES)}) under {self.folder}. Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        missing = [self.label_path_of(p) for p in photos.values() if not self.label_path_of(p).is_file()]
        if missing:
            shown = "\n  ".join(str(p) for p in missing[:5])
            raise UserError(
                f"LSUN-Churches {self.split}: {len(missing)} of {len(photos)} photos have no label map, e.g. the "
                f"missing file\n  {shown}\nLSUN has no labels: run an ADE20K segmentation network on the photos and "
                "save each prediction as <photo stem>.png next to the photo (8-bit, 0 = unknown, 1..150 = ADE20K "
                "classes); see the docstring of midms/data/lsun.py."
            )
        return photos

    @staticmethod
    def label_path_of(photo: Path) -> Path:
        return photo.with_suffix(".png")

    def photo_path(self, sample_id: str) -> Path:
        return self._photos[sample_id]

    def files(self, sample_id: str, thorough: bool = True) -> list[Path]:
        photo = self._photos[sample_id]
        return [photo, self.label_path_of(photo)]

    def _ref_to_id(self, name: str) -> str | None:
        stem = Path(name).stem
        return stem if stem in self._photos else None

    @property
    def spec(self) -> DataSpec:
        return DataSpec(semantic_nc=SEMANTIC_NC, image_size=self.crop_size, num_classes=SEMANTIC_NC, has_target=False)

    def load_labels(self, path: Path, size: int) -> np.ndarray:
        """A label map resized (nearest) to size x size, 255 mapped to 150 (uint8)."""
        img = load_image(path, mode=None)
        if img.mode not in LABEL_MODES:
            raise UnreadableFile(path, f"mode {img.mode}: a label map must be one channel of class ids (8-bit PNG)")
        labels = np.asarray(img.resize((size, size), Image.NEAREST)).astype(np.int64)
        labels[labels == 255] = LABEL_NC
        if labels.min() < 0 or labels.max() > LABEL_NC:
            raise UnreadableFile(path, f"class ids up to {labels.max()}: expected 0..{LABEL_NC} or 255")
        return labels.astype(np.uint8)

    def _load(self, sample_id: str) -> Loaded:
        photo_file = self._photos[sample_id]
        photo = photo_array(load_image(photo_file), self.load_size)
        labels = self.load_labels(self.label_path_of(photo_file), self.load_size)
        return Loaded(photo=photo, semantics=labels, labels=labels)

    def _semantics_tensor(self, semantics: np.ndarray) -> torch.Tensor:
        one_hot = np.zeros((SEMANTIC_NC, *semantics.shape), dtype=np.float32)  # K×H×W
        np.put_along_axis(one_hot, semantics[None].astype(np.intp), 1.0, axis=0)
        return torch.from_numpy(one_hot)


# ----------------------------------------------------------------------------------------------------------
# LMDB export


def _encoded_suffix(data: bytes) -> str | None:
    """The file extension of encoded bytes we keep as they are (JPEG, WebP), else None."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def _existing(out_dir: Path, key: str) -> Path | None:
    for suffix in (".webp", ".jpg"):
        path = out_dir / f"{key}{suffix}"
        if path.is_file():
            return path
    return None


def export_lmdb(lmdb_path: str | Path, out_dir: str | Path, limit: int | None = None) -> dict[str, int]:
    """Write the photos of an LSUN LMDB database into ``out_dir`` as ``<key>.webp`` / ``<key>.jpg``.

    Encoded JPEG and WebP values are written byte for byte; any other format is decoded and written as
    lossless WebP. Files already there are skipped (resumable); each file appears atomically. ``limit``
    stops after that many entries. Returns the counts ``{"written", "skipped", "reencoded", "total"}``.
    """
    import lmdb  # only the export needs it

    lmdb_path, out_dir = Path(lmdb_path).expanduser(), Path(out_dir).expanduser()
    if not lmdb_path.exists():
        raise UserError(
            f"no LMDB database at {lmdb_path}: download LSUN church_outdoor_train_lmdb / church_outdoor_val_lmdb "
            "(github.com/fyu/lsun, download.py -c church_outdoor) and unzip it."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "skipped": 0, "reencoded": 0, "total": 0}
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False, readahead=False, subdir=lmdb_path.is_dir())
    try:
        entries = env.stat()["entries"]
        total = entries if limit is None else min(limit, entries)
        with env.begin(write=False) as txn, tqdm(total=total, desc=f"export {lmdb_path.name}", unit="img") as bar:
            for raw_key, value in txn.cursor():
                if counts["total"] >= total:
                    break
                counts["total"] += 1
                bar.update(1)
                key = raw_key.decode("ascii", errors="replace")
                if not _KEY.match(key):
                    raise UserError(f"{lmdb_path}: key {key!r} is not a usable file name; is this an LSUN database?")
                if _existing(out_dir, key) is not None:
                    counts["skipped"] += 1
                    continue
                data = bytes(value)
                suffix = _encoded_suffix(data)
                if suffix is None:
                    try:
                        with Image.open(io.BytesIO(data)) as img:
                            buffer = io.BytesIO()
                            img.convert("RGB").save(buffer, format="WEBP", lossless=True)
                    except (OSError, ValueError) as err:
                        log.warning("%s: entry %s is not a readable image (%s); left out", lmdb_path, key, err)
                        continue
                    data, suffix = buffer.getvalue(), ".webp"
                    counts["reencoded"] += 1
                atomic_write_bytes(out_dir / f"{key}{suffix}", data)
                counts["written"] += 1
    finally:
        env.close()
    log.info(
        "exported %s to %s: %d written (%d re-encoded), %d already there",
        lmdb_path,
        out_dir,
        counts["written"],
        counts["reencoded"],
        counts["skipped"],
    )
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m midms.data.lsun export <lmdb> <out dir> [--limit N]``."""
    parser = argparse.ArgumentParser(prog="python -m midms.data.lsun", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the photos of an LSUN LMDB database into a folder")
    export.add_argument("lmdb", type=Path, help="the LMDB folder, e.g. church_outdoor_train_lmdb")
    export.add_argument("out_dir", type=Path, help="e.g. <root>/training")
    export.add_argument("--limit", type=int, default=None, help="stop after N entries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        counts = export_lmdb(args.lmdb, args.out_dir, args.limit)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{counts['written']} written ({counts['reencoded']} re-encoded), {counts['skipped']} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
