"""The evaluation folder: what translation writes and scoring reads (docs/evaluation.md).

::

    <run dir>/samples/<name>.<format>          the outputs, one per evaluation pair
    <run dir>/eval/pairs.csv                   name, id, exemplar_id, batch: every scored pair, in order
    <run dir>/eval/folder.json                 the reference folder, its fingerprint, the dataset key, the format
    <run dir>/eval/skipped_pairs.json          pairs whose files could not be read (never replaced by others)
    <run dir>/eval/labels/<id>.png             the inputs' region labels (8- or 16-bit PNG of class ids)
    <run dir>/eval/exemplar_labels/<name>.png  the exemplars' region labels
    <run dir>/eval/warped_labels/<name>.png    the exemplar's labels carried onto the input by the model's warp
    <run dir>/eval/inputs/<name>.png           the input semantics as a picture, for the sample grid's rows
    <cache>/reference/<dataset key>-<fingerprint>/{image,exemplar,target}/<name>.png   the real side

The real side is kept once per content in the cache (:class:`ReferenceStore`): every image's pixels are hashed
as it goes by, and only images that no finished folder of the dataset holds are encoded; the folder's name ends
with the fingerprint of all of them, so a changed copy of a dataset never meets a stale cache.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from midms.errors import UserError
from midms.evaluation.images import encode
from midms.files import atomic_write_text
from midms.processes import process_gone

log = logging.getLogger(__name__)

SAMPLES, EVAL = "samples", "eval"
PAIRS_FILE, FOLDER_FILE, SKIPPED_FILE = "pairs.csv", "folder.json", "skipped_pairs.json"
LABEL_KINDS = ("labels", "exemplar_labels", "warped_labels")
REFERENCE_KINDS = ("image", "exemplar", "target")
PAIR_COLUMNS = ("name", "id", "exemplar_id", "batch")
MANIFEST = "manifest.json"


@dataclass
class FolderInfo:
    """``eval/folder.json``: where the real side of an evaluation folder is and how it was written."""

    reference_dir: str
    reference_fingerprint: str | None
    dataset_key: str
    image_size: int
    image_format: str = "png"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. midms-eval's resize record

    def write(self, eval_dir: Path) -> None:
        atomic_write_text(eval_dir / FOLDER_FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, eval_dir: Path) -> FolderInfo:
        path = eval_dir / FOLDER_FILE
        if not path.is_file():
            raise UserError(
                f"{path} does not exist: {eval_dir.parent} is not a translated evaluation folder (translation writes "
                f"it; score other outputs with midms-eval --fake ... --real ...)."
            )
        return cls(**json.loads(path.read_text()))


# ------------------------------------------------------------------------------------------------ labels


def save_label_maps(labels: Tensor, names: list[str], folder: Path) -> None:
    """B×H×W non-negative class ids as single-channel PNGs (8-bit, or 16-bit above 255): lossless."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, name in zip(labels.cpu(), names, strict=True):
        array = label.numpy()
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"label map {name}: class ids must lie in [0, 65535], got [{array.min()}, {array.max()}]")
        if array.max() < 256:
            Image.fromarray(array.astype(np.uint8), mode="L").save(folder / f"{name}.png")
        else:
            Image.fromarray(array.astype(np.uint16)).save(folder / f"{name}.png")


def load_label_map(path: Path, size: int | None = None) -> Tensor:
    """A single-channel PNG of class ids as H×W int64, resized (nearest) to ``size`` when given."""
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise UserError(f"label map {path} has mode {im.mode}; expected a single-channel PNG of class ids")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return torch.from_numpy(np.asarray(im).astype(np.int64))


# ------------------------------------------------------------------------------------------------- pairs


def write_pairs(eval_dir: Path, rows: list[dict[str, Any]], name: str = PAIRS_FILE) -> None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    with open(eval_dir / f".{name}.tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PAIR_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(eval_dir / f".{name}.tmp", eval_dir / name)


def read_pairs(eval_dir: Path, name: str = PAIRS_FILE) -> list[dict[str, Any]]:
    with open(eval_dir / name, newline="") as f:
        return [{**row, "batch": int(row["batch"])} for row in csv.DictReader(f)]


# --------------------------------------------------------------------------------------------- reference


def image_digest(kind: str, name: str, image: Tensor) -> str:
    """SHA-256 of one real-side image as evaluated (8-bit pixels and shape), with its kind and name."""
    h = hashlib.sha256(f"{kind}/{name}:{tuple(image.shape)}\n".encode())
    h.update(image.contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprint(digests: dict[str, str]) -> str:
    """The content key of a reference folder: the same images under the same names give the same key, in
    whatever order (or by however many processes) they were written."""
    h = hashlib.sha256()
    for key in sorted(digests):
        h.update(f"{key} {digests[key]}\n".encode())
    return h.hexdigest()[:16]


def _manifest(folder: Path) -> dict[str, str] | None:
    try:
        return json.loads((folder / MANIFEST).read_text()) if (folder / ".complete").exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def newest_reference(root: Path, dataset_key: str) -> Path | None:
    """The most recently finished reference folder of ``dataset_key`` that lists its images' digests."""
    finished = [p for p in root.glob(f"{glob.escape(dataset_key)}-*") if (p / ".complete").exists()]
    finished = [p for p in finished if (p / MANIFEST).exists()]
    return max(finished, key=lambda p: (p / ".complete").stat().st_mtime_ns, default=None)


class ReferenceStore:
    """The real-side images of one process's share of the evaluation pairs.

    Each image is hashed (:func:`image_digest`); one that the newest finished folder of the dataset already
    holds with the same digest is not encoded again, any other is staged as PNG under ``staging``. The share's
    digests and the folder it leaned on are kept in ``<staging>/<shard>.json`` for :func:`finish_reference`.
    """

    def __init__(self, root: Path, dataset_key: str, staging: Path, shard: int = 0) -> None:
        self.root, self.dataset_key, self.staging, self.shard = Path(root), dataset_key, Path(staging), shard
        self.candidate = newest_reference(self.root, dataset_key)
        self._known = (_manifest(self.candidate) or {}) if self.candidate else {}
        self.digests: dict[str, str] = {}

    def add(self, kind: str, images: Tensor, names: list[str]) -> None:
        for image, name in zip(images, names, strict=True):
            key = f"{kind}/{name}"
            digest = self.digests[key] = image_digest(kind, name, image)
            if self._known.get(key) != digest:
                (self.staging / kind).mkdir(parents=True, exist_ok=True)
                (self.staging / kind / f"{name}.png").write_bytes(encode(image, "png"))

    def save(self) -> None:
        shard = {"candidate": str(self.candidate) if self.candidate else None, "digests": self.digests}
        self.staging.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.staging / f"{self.shard}.json", json.dumps(shard))


def _remove_stale(root: Path, dataset_key: str) -> None:
    """Temporary folders of killed evaluations (their process on this host has ended) are removed; another
    host's are left to it (its process cannot be checked from here)."""
    for folder in root.glob(f".{glob.escape(dataset_key)}.*.tmp"):
        host, _, pid = folder.name[len(dataset_key) + 2 : -len(".tmp")].rpartition(".")
        if pid.isdigit() and process_gone(host, int(pid)):
            log.info("removing %s: left by an evaluation that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)


def finish_reference(root: Path, dataset_key: str, staging: Path, shards: int) -> tuple[Path, str]:
    """Merge the shards' digests into one content-keyed folder ``<root>/<dataset key>-<fingerprint>``.

    An identical finished folder is reused as it is; otherwise the folder is assembled in a private temporary
    folder (staged images moved, the others hard-linked or copied from the folder each shard leaned on) and
    renamed into place, so concurrent jobs race harmlessly. The staging folder is removed."""
    root = Path(root)
    digests: dict[str, str] = {}
    source: dict[str, Path | None] = {}
    for shard in range(shards):
        part = json.loads((staging / f"{shard}.json").read_text())
        digests.update(part["digests"])
        source.update(dict.fromkeys(part["digests"], Path(part["candidate"]) if part["candidate"] else None))
    key = fingerprint(digests)
    final = root / f"{dataset_key}-{key}"
    _remove_stale(root, dataset_key)  # also when the folder is reused: a killed run's leftovers go either way
    if (final / ".complete").exists():
        shutil.rmtree(staging, ignore_errors=True)
        return final, key
    tmp = root / f".{dataset_key}.{socket.gethostname()}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for entry in sorted(digests):
            target, staged = tmp / f"{entry}.png", staging / f"{entry}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            if staged.exists():
                shutil.move(staged, target)  # the run folder and the cache may lie on different file systems
                continue
            held = source[entry] / f"{entry}.png" if source[entry] else None
            if held is None or not held.exists():
                raise UserError(
                    f"the reference image {entry} was to be taken from {source[entry]}, which no longer holds it (the "
                    f"cache {root} was cleaned during the evaluation). Run the evaluation again."
                )
            try:
                os.link(held, target)
            except OSError:
                shutil.copyfile(held, target)
        atomic_write_text(tmp / MANIFEST, json.dumps(digests, sort_keys=True))
        (tmp / ".complete").touch()
        try:
            os.rename(tmp, final)
        except OSError:  # another job finished first, or an incomplete folder is in the way
            if (final / ".complete").exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed evaluation (a full disk, a kill) leaves nothing behind
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return final, key
