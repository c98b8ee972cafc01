"""ADE20K scene parsing, segmentation map to scene, as CoCosNet reads it (``dataset=ade20k``).

Layout (CoCosNet's ``data/ade20k_dataset.py``, https://github.com/microsoft/CoCosNet: ``get_paths`` searches
``<dataroot>/training`` and ``<dataroot>/validation`` recursively, keeps the files whose name holds ``_train_``
or ``_val_``, the ``.jpg`` as photos and the ``.png`` as label maps, paired by name)::

    <root>/training/**/ADE_train_<n>.jpg   and   <root>/training/**/ADE_train_<n>.png
    <root>/validation/**/ADE_val_<n>.jpg   and   <root>/validation/**/ADE_val_<n>.png
    <root>/ade20k_ref.txt, <root>/ade20k_ref_test.txt     CoCosNet's pairing lists

The ADEChallengeData2016 release (http://sceneparsing.csail.mit.edu) keeps photos in ``images/<split>/`` and
label maps in ``annotations/<split>/``; link both under the split folder::

    for s in training validation; do mkdir -p <root>/$s
      ln -s $ADE/images/$s <root>/$s/images; ln -s $ADE/annotations/$s <root>/$s/annotations; done

Label maps: 8-bit PNGs, 0 = other, 1..150 = the 150 classes; the one-hot input has 151 channels (CoCosNet's
``label_nc=150`` with ``contain_dontcare_label``, 255 mapped to channel 150), as LSUN-Churches (:mod:`.lsun`).

Pairing (``Pix2pixDataset.__getitem__`` and ``ADE20KDataset.get_ref``): a line of a list is
``<photo>.jpg,<ref 1>.jpg,...``; training takes the line's first and last reference (easy and hard, CoCosNet's rule
in :mod:`midms.data.images`); evaluation takes the first, and looks it up among the *training* photos (the
official test code replaces ``validation`` by ``training`` in the reference's folder). The released
``ade20k_ref_test.txt`` of the CoCosNet repository is an excerpt; UNITE's (github.com/fnzhan/UNITE, ``data/``)
has the whole list (2,000 lines, 20 references each). Both are read from the root, never shipped here.

Pre-processing (CoCosNet's options for ade20k): ``resize_and_crop``, training load 286 and crop 256 with flips,
evaluation at 256.
"""

from __future__ import annotations

from pathlib import Path

from midms.data.images import DatasetRootMissing, natural_key
from midms.data.lsun import LSUNChurch
from midms.errors import UserError
from midms.imageio import IMAGE_SUFFIXES

FOLDERS = {"train": "training", "val": "validation"}
NAME_TAG = {"train": "_train_", "val": "_val_"}  # get_paths keeps only the files of its phase

LAYOUT = """\
  {root}/training/**/ADE_train_<n>.jpg  and  {root}/training/**/ADE_train_<n>.png   (photo and label map)
  {root}/validation/**/ADE_val_<n>.jpg  and  {root}/validation/**/ADE_val_<n>.png
  {root}/ade20k_ref.txt, {root}/ade20k_ref_test.txt   (pairing lists: CoCosNet's data/; the whole test list
  is in data/ of github.com/fnzhan/UNITE)
From ADEChallengeData2016 (sceneparsing.csail.mit.edu): link images/<split> and annotations/<split> under
{root}/<split> (see midms/data/ade20k.py)."""


class ADE20K(LSUNChurch):
    """One split of ADE20K (``train`` or ``val``; ``test`` is an alias of ``val``); the loading, one-hot input and
    pairing options of :class:`~midms.data.lsun.LSUNChurch` and :class:`~midms.data.images.ExemplarPairs`."""

    name = "ade20k"
    input_kind = "one-hot ADE20K labels (151 channels)"

    def __init__(self, root: str | Path, split: str = "train", **options) -> None:
        super(LSUNChurch, self).__init__(root, split, **options)  # ExemplarPairs: LSUNChurch indexes another layout
        self.folder = self.root / FOLDERS[self.split]
        if not self.root.is_dir():
            raise DatasetRootMissing(
                f"ADE20K not found: expected the folder {self.root} (dataset.root; by default <paths.data_dir>/ade20k, "
                f"set MIDMS_DATA or paths.data_dir). Expected layout:\n" + LAYOUT.format(root=self.root)
            )
        photos, self._labels = self._scan_split(self.split)
        self.ids = sorted(photos, key=lambda s: natural_key(str(photos[s].relative_to(self.folder))))
        self._photos = dict(photos)
        if not self.train:  # the official test code takes each exemplar from the training photos
            training, training_labels = self._scan_split("train")
            self._photos.update({k: v for k, v in training.items() if k not in photos})
            self._labels.update({k: v for k, v in training_labels.items() if k not in photos})
        self._finish_setup()

    def _scan_split(self, split: str) -> tuple[dict[str, Path], dict[str, Path]]:
        """The photos and label maps of one split folder, by stem, as ``get_paths`` selects them."""
        folder, tag = self.root / FOLDERS[split], NAME_TAG[split]
        if not folder.is_dir():
            raise UserError(
                f"ADE20K at {self.root}: the split folder {folder} is missing. Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        photos: dict[str, Path] = {}
        labels: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            if tag not in path.name or not path.is_file():
                continue
            if path.suffix.lower() == ".png":
                labels[path.stem] = path
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                photos[path.stem] = path
        if not photos:
            raise UserError(
                f"ADE20K {split}: no photo named *{tag}*.jpg under {folder}. Expected layout:\n"
                + LAYOUT.format(root=self.root)
            )
        missing = [f"{folder}/**/{stem}.png" for stem in photos if stem not in labels]
        if missing:
            raise UserError(
                f"ADE20K {split}: {len(missing)} of {len(photos)} photos have no label map, e.g. {missing[:3]}. "
                "Link annotations/<split> of ADEChallengeData2016 under the split folder (midms/data/ade20k.py)."
            )
        return photos, labels

    def label_path_of(self, photo: Path) -> Path:  # by name anywhere in the split folder, as get_paths pairs them
        return self._labels[photo.stem]
