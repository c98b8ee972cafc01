"""ADE20K as CoCosNet reads it, on layouts the tests write (midms.testing.fake_ade20k): the files get_paths
selects, label maps found by name in another folder, the pairing lists (test exemplars from the training photos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from midms.data.ade20k import ADE20K
from midms.data.contract import validate_sample
from midms.data.images import DatasetRootMissing
from midms.errors import UserError
from midms.testing.fake_ade20k import write_fake_layout

SMALL = {"image_size": 32, "load_size": 40}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path / "ade20k"
    return root, write_fake_layout(root)


def test_samples_follow_the_contract_with_151_one_hot_channels(layout):
    root, stems = layout
    for split in ("train", "val"):
        ds = ADE20K(root, split=split, **SMALL)
        assert len(ds) == len(stems[split]) and ds.ids == stems[split]  # natural order, only its own split
        assert ds.spec.semantic_nc == 151 and not ds.spec.has_target
        for i in range(len(ds)):
            sample = ds[i]
            validate_sample(sample, ds.spec, where=f"{split}[{i}]")
            assert torch.all(sample["semantics"].sum(dim=0) == 1.0)
            assert torch.equal(sample["semantics"].argmax(dim=0), sample["labels"])
    val = ADE20K(root, split="test", **SMALL)
    raw = np.asarray(Image.open(root / "validation" / "annotations" / f"{stems['val'][0]}.png"))
    expected = np.asarray(Image.fromarray(raw).resize((32, 32), Image.NEAREST)).astype(np.int64)
    expected[expected == 255] = 150  # CoCosNet's get_label_tensor: 255 is label_nc
    assert val.split == "val" and np.array_equal(val[0]["labels"].numpy(), expected)


def test_evaluation_exemplars_are_the_listed_training_photos(layout):
    root, stems = layout
    val = ADE20K(root, split="val", **SMALL)
    listed = {q: refs.split(",") for q, refs in (line.split(",", 1) for line in
              (root / "ade20k_ref_test.txt").read_text().split())}  # fmt: skip
    assert val.pairs_from_file == len(val) == 4
    train = ADE20K(root, split="train", **{**SMALL, "load_size": 32})
    for i in range(len(val)):
        sample = val[i]
        first = listed[f"{sample['id']}.jpg"][0]
        assert f"{sample['exemplar_id']}.jpg" == first and sample["exemplar_id"] in stems["train"]
        own = train[train.ids.index(sample["exemplar_id"])]  # the same photo read as a training sample, unflipped
        assert torch.equal(sample["exemplar_labels"], own["labels"]) or torch.equal(
            sample["exemplar_labels"], own["labels"].flip(-1)
        )


def test_training_takes_the_first_or_the_last_reference(layout):
    root, stems = layout
    hard = ADE20K(root, split="train", real_reference_probability=1.0, hard_reference_probability=1.0, **SMALL)
    easy = ADE20K(root, split="train", real_reference_probability=1.0, hard_reference_probability=0.0, **SMALL)
    ids = stems["train"]
    for i in range(len(ids)):  # the list names the next three photos: easy = +1, hard = +3
        assert easy.exemplar_id(i) == ids[(i + 1) % len(ids)] and hard.exemplar_id(i) == ids[(i + 3) % len(ids)]


def test_a_file_of_the_other_phase_is_ignored_and_a_missing_label_map_is_named(layout):
    root, stems = layout
    stray = root / "training" / "images" / "ADE_val_00000099.jpg"  # get_paths keeps only '_train_' names here
    stray.write_bytes((root / "validation" / "images" / f"{stems['val'][0]}.jpg").read_bytes())
    assert "ADE_val_00000099" not in ADE20K(root, split="train", **SMALL).ids
    (root / "training" / "annotations" / f"{stems['train'][2]}.png").unlink()
    with pytest.raises(UserError, match=f"{stems['train'][2]}.png"):
        ADE20K(root, split="train", **SMALL)
    with pytest.raises(DatasetRootMissing, match="ADEChallengeData2016|ade20k"):
        ADE20K(root.parent / "nowhere", split="val", **SMALL)
