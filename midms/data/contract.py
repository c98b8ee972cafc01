"""The data contract (docs/guides/adding-a-dataset.md): the keys every dataset yields and a validator for them.

Every sample is a dict; tensors are float32, images in [-1, 1], CHW. ``semantics`` is an edge map in
[0, 1] (binary, or soft as the synthetic dataset's), one-hot labels in {0, 1}, or CoCosNet's 15-channel edge
tensor in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGE_KEYS = ("image", "exemplar", "target")
SEMANTIC_KEYS = ("semantics", "exemplar_semantics")
LABEL_KEYS = ("labels", "exemplar_labels")
ID_KEYS = ("id", "exemplar_id")
#: optional: a bool, whether ``image`` is a ground truth for this exemplar (the exemplar is the photo itself or, in
#: DeepFashion, another view of the same person and garment): CoCosNet's ``self_ref``, its paired-only losses' flag
PAIRED_KEY = "paired"
REQUIRED_KEYS = ("semantics", "image", "exemplar", "exemplar_semantics", "id", "exemplar_id")


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data it is built for."""

    semantic_nc: int  # channels of ``semantics``
    image_size: int  # H = W of every image
    num_classes: int | None  # region classes of ``labels`` (None when the dataset has none)
    has_target: bool  # whether samples carry a ground-truth ``target``


def validate_sample(sample: dict, spec: DataSpec, where: str = "sample") -> None:
    """Raise ``ValueError`` naming the offending key when ``sample`` breaks the contract."""
    missing = [k for k in REQUIRED_KEYS if k not in sample]
    if spec.has_target and "target" not in sample:
        missing.append("target")
    if missing:
        raise ValueError(f"{where}: missing keys {missing}; the data contract is in midms/data/contract.py")
    size = (spec.image_size, spec.image_size)
    for key in IMAGE_KEYS:
        if key not in sample:
            continue
        x = sample[key]
        if x.dtype != torch.float32 or tuple(x.shape) != (3, *size):
            raise ValueError(f"{where}: {key} must be float32 3x{size[0]}x{size[1]}, got {x.dtype} {tuple(x.shape)}")
        if x.min() < -1.0 - 1e-6 or x.max() > 1.0 + 1e-6:
            raise ValueError(f"{where}: {key} must lie in [-1, 1], got [{x.min():.3f}, {x.max():.3f}]")
    for key in SEMANTIC_KEYS:
        x = sample[key]
        if x.dtype != torch.float32 or tuple(x.shape) != (spec.semantic_nc, *size):
            raise ValueError(
                f"{where}: {key} must be float32 {spec.semantic_nc}x{size[0]}x{size[1]}, got {x.dtype} {tuple(x.shape)}"
            )
    for key in LABEL_KEYS:
        if key in sample and (sample[key].dtype != torch.int64 or tuple(sample[key].shape) != size):
            raise ValueError(
                f"{where}: {key} must be int64 {size[0]}x{size[1]}, got {sample[key].dtype} {tuple(sample[key].shape)}"
            )
    if PAIRED_KEY in sample and (sample[PAIRED_KEY].dtype != torch.bool or sample[PAIRED_KEY].dim() != 0):
        raise ValueError(f"{where}: {PAIRED_KEY} must be a 0-dim bool tensor, got {sample[PAIRED_KEY]!r}")
    for key in ID_KEYS:
        if not isinstance(sample[key], str) or not sample[key]:
            raise ValueError(f"{where}: {key} must be a non-empty string, got {sample[key]!r}")
