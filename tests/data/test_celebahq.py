"""CelebA-HQ edge-to-face reader on a generated copy of the layout (midms.testing.fake_celebahq.write_fake_layout)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pairs import assert_only_its_pairs_are_skipped, evaluation_pairs
from PIL import Image
from skimage.segmentation import find_boundaries

from midms.data import celebahq
from midms.data.celebahq import CelebAHQEdges, part_boundaries
from midms.data.contract import validate_sample
from midms.data.datamodule import TranslationDataModule
from midms.data.images import CropFlip, crop_flip, photo_array
from midms.errors import UserError
from midms.testing.fake_celebahq import write_fake_layout

SMALL = {"image_size": 48, "load_size": 64}


# the 13 distance channels in order: inner_parts of CelebAHQEdgeDataset.get_label_tensor
# (cvlab-kaist/MIDMs data/celebahqedge_dataset.py, as microsoft/CoCosNet's); "hair" last (it also masks Canny)
INNER_PARTS = (
    "skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "u_lip", "mouth", "l_lip", "eye_g", "hair",
)  # fmt: skip
# CelebAMask-HQ's part order, label k + 1 for part k, later parts painted over earlier ones
# (switchablenorms/CelebAMask-HQ face_parsing/Data_preprocessing/g_mask.py, label_list)
FACE_PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip", "l_lip",
    "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_fake_layout(tmp_path / "celebahq")
    return tmp_path / "celebahq"


@pytest.fixture
def paired_root(tmp_path: Path) -> Path:
    write_fake_layout(tmp_path / "celebahq", pairing_lists=True)
    return tmp_path / "celebahq"


def read_masks(root: Path, sample_id: str) -> dict[str, np.ndarray]:
    n = int(sample_id)
    out = {}
    for part in FACE_PARTS:
        path = root / "CelebAMask-HQ-mask-anno" / str(n // 2000) / f"{n:05d}_{part}.png"
        if path.is_file():
            out[part] = np.asarray(Image.open(path).convert("L"))
    return out


def test_samples_follow_the_contract(root: Path) -> None:
    for split in ("train", "val"):
        ds = CelebAHQEdges(root, split=split, **SMALL)
        assert ds.spec.semantic_nc == 15 and ds.spec.num_classes == 19 and not ds.spec.has_target
        for i in range(len(ds)):
            sample = ds[i]
            validate_sample(sample, ds.spec, where=f"{split}[{i}]")
            assert sample["labels"].min() >= 0 and sample["labels"].max() < 19
            assert sample["semantics"].min() >= 0.0 and sample["semantics"].max() <= 1.0
            if split == "val":
                assert sample["exemplar_id"] != sample["id"]
    assert len(CelebAHQEdges(root, split="train", **SMALL)) == 8
    assert len(CelebAHQEdges(root, split="test", **SMALL)) == 4  # test = val.txt


def test_boundary_rule_equals_scikit_image() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(40, 30)).repeat(2, axis=0)
    assert np.array_equal(part_boundaries(labels), find_boundaries(labels, connectivity=1, mode="thick"))


def test_edge_channels_lie_on_the_mask_boundaries(root: Path) -> None:
    ds = CelebAHQEdges(root, split="val", image_size=64, load_size=64)  # masks and photos are 64 px: no resize
    for index in range(len(ds)):
        sample = ds[index]
        sem = sample["semantics"].numpy()
        masks = read_masks(root, sample["id"])
        boundaries = np.zeros((64, 64), dtype=bool)
        for part in INNER_PARTS:
            if part in masks:
                boundaries |= find_boundaries(masks[part], connectivity=1, mode="thick")
        assert boundaries.any()
        assert np.array_equal(sem[14] == 1.0, boundaries) and set(np.unique(sem[14])) <= {0.0, 1.0}
        edges = sem[0] == 1.0
        assert np.all(edges[boundaries])  # channel 0 contains every part boundary ...
        canny_only = edges & ~boundaries
        assert canny_only.any()  # ... plus Canny edges of the photo ...
        non_hair = np.zeros((64, 64), dtype=bool)
        for part in INNER_PARTS[:-1]:
            if part in masks:
                non_hair |= masks[part] == 255
        non_hair &= masks["hair"] != 255
        assert not (canny_only & non_hair).any()  # ... kept only outside the non-hair parts
        yy, xx = np.mgrid[0:64, 0:64]
        for k, part in enumerate(INNER_PARTS, start=1):
            if part not in masks:
                assert np.all(sem[k] == 1.0), f"absent part {part} must give the saturated distance map"
                continue
            by, bx = np.nonzero(find_boundaries(masks[part], connectivity=1, mode="thick"))
            l1 = np.abs(yy[..., None] - by).astype(int) + np.abs(xx[..., None] - bx)
            expected = np.minimum(l1.min(axis=-1) // 3, 255) / 255.0
            np.testing.assert_allclose(sem[k], expected, atol=1e-6, err_msg=part)
        labels = sample["labels"].numpy()
        hair = FACE_PARTS.index("hair")
        painted_over = np.zeros((64, 64), dtype=bool)
        for part in FACE_PARTS[hair + 1 :]:
            if part in masks:
                painted_over |= masks[part] != 0
        assert np.array_equal(labels == hair + 1, (masks["hair"] != 0) & ~painted_over)  # g_mask.py's order
        # no glasses class: the reference scripts' maps are all_parts_except_glasses (UNITE, MATEBIT); a pixel under
        # glasses keeps what the parts before and after them paint (CelebAMask-HQ's eye_g is class 3)
        assert not (labels == 3).any()
        if "eye_g" in masks:
            glasses = masks["eye_g"] != 0
            skin = FACE_PARTS.index("skin") + 1
            after = np.zeros((64, 64), dtype=bool)
            for part in FACE_PARTS[FACE_PARTS.index("eye_g") + 1 :]:
                if part in masks:
                    after |= masks[part] != 0
            under = glasses & ~after & (masks["skin"] != 0) & (masks.get("nose", np.zeros((64, 64))) == 0)
            assert under.any() and (labels[under] == skin).all()
    assert any("eye_g" not in read_masks(root, i) for i in ds.ids) and any(
        "eye_g" in read_masks(root, i) for i in ds.ids
    )


def test_training_applies_one_crop_and_flip_to_photo_edges_and_labels(root: Path) -> None:
    ds = CelebAHQEdges(root, split="train", real_reference_probability=0.0, **SMALL)  # exemplar: self, re-cropped
    torch.manual_seed(0)
    seen = set()
    for index in range(len(ds)):
        sample = ds[index]
        sample_id = sample["id"]
        assert sample["exemplar_id"] == sample_id
        photo = Image.open(root / "CelebA-HQ-img" / f"{sample_id}.jpg").convert("RGB")
        full_photo = photo_array(photo, 64)
        full_sem, full_labels = ds.edges_and_labels(sample_id, photo)
        for prefix, image_key, sem_key, label_key in (
            ("", "image", "semantics", "labels"),
            ("exemplar_", "exemplar", "exemplar_semantics", "exemplar_labels"),
        ):
            target = ((sample[image_key] + 1) * 127.5).round().to(torch.uint8).numpy()
            matches = [
                p
                for p in (CropFlip(x, y, f) for x in range(17) for y in range(17) for f in (False, True))
                if np.array_equal(crop_flip(full_photo, p, 48), target)
            ]
            assert len(matches) == 1, prefix
            p = matches[0]
            seen.add(p)
            assert np.allclose(crop_flip(full_sem, p, 48) / 255.0, sample[sem_key].numpy())
            assert np.array_equal(crop_flip(full_labels, p, 48), sample[label_key].numpy())
    assert len(seen) > 4 and any(p.flip for p in seen) and any(not p.flip for p in seen)


def test_pairing_lists_are_honoured(paired_root: Path) -> None:
    val = CelebAHQEdges(paired_root, split="val", **SMALL)
    assert val.protocol()["pairs_from_file"] == len(val) == 4
    assert "celebahq_ref_test.txt" in val.protocol()["pairing"]
    listed = {
        line.split(",")[0]: line.split(",")[1:] for line in (paired_root / "celebahq_ref_test.txt").read_text().split()
    }
    for i in range(len(val)):
        sample = val[i]
        assert f"{sample['exemplar_id']}.jpg" == listed[f"{sample['id']}.jpg"][0]
    refs = {line.split(",")[0]: line.split(",")[1:] for line in (paired_root / "celebahq_ref.txt").read_text().split()}
    for real_p, hard_p, pick in ((1.0, 1.0, "last"), (1.0, 0.0, "first"), (0.0, 0.0, "self")):
        train = CelebAHQEdges(
            paired_root, split="train", real_reference_probability=real_p, hard_reference_probability=hard_p, **SMALL
        )
        for i in range(len(train)):
            sample_id, exemplar_id = train.ids[i], train.exemplar_id(i)
            expected = {"first": refs[f"{sample_id}.jpg"][0], "last": refs[f"{sample_id}.jpg"][-1]}.get(pick)
            assert f"{exemplar_id}.jpg" == expected if expected else exemplar_id == sample_id
    seeded = CelebAHQEdges(paired_root, split="val", pairs="seeded", **SMALL)
    assert seeded.protocol()["pairing"].startswith("seeded") and seeded.pairs_from_file == 0


def test_training_rule_mixes_references_as_cocosnet(paired_root: Path) -> None:
    train = CelebAHQEdges(paired_root, split="train", **SMALL)  # 0.7 / 0.2
    rng = np.random.default_rng(1)
    picks = [train.exemplar_id(0, rng) for _ in range(2000)]
    refs = (paired_root / "celebahq_ref.txt").read_text().split()[0].split(",")
    first, last = (r.removesuffix(".jpg") for r in (refs[1], refs[-1]))
    assert abs(picks.count(last) / 2000 - 0.2) < 0.04
    assert abs(picks.count(first) / 2000 - 0.5) < 0.04
    assert abs(picks.count(train.ids[0]) / 2000 - 0.3) < 0.04


def test_matebits_rule_evaluates_on_the_second_reference_and_draws_the_first_as_hard(paired_root: Path) -> None:
    # MATEBIT data/celebahqedge_dataset.py get_ref and data/pix2pix_dataset.py (github.com/AiArt-Gao/MATEBIT): the
    # test phase takes val[1] of items[1:] (the second reference); training p < 0.3 takes val[0] = items[1] (hard),
    # p < 0.7 val[1] = items[-1], else the photo itself
    ids = [line.split(",")[0] for line in (paired_root / "celebahq_ref_test.txt").read_text().split()]
    lines = [",".join([q, ids[(i + 1) % len(ids)], ids[(i + 2) % len(ids)]]) for i, q in enumerate(ids)]
    (paired_root / "celebahq_ref_test.txt").write_text("\n".join(lines) + "\n")  # two references a line
    val = CelebAHQEdges(paired_root, split="val", reference_rule="matebit", **SMALL)
    listed = {
        line.split(",")[0]: line.split(",")[1:] for line in (paired_root / "celebahq_ref_test.txt").read_text().split()
    }
    for i in range(len(val)):
        assert f"{val.exemplar_id(i)}.jpg" == listed[f"{val.ids[i]}.jpg"][1]
    assert "second reference (MATEBIT)" in val.protocol()["pairing"]
    assert val.dataset_key != CelebAHQEdges(paired_root, split="val", **SMALL).dataset_key
    train = CelebAHQEdges(paired_root, split="train", reference_rule="matebit", hard_reference_probability=0.3, **SMALL)
    rng = np.random.default_rng(2)
    picks = [train.exemplar_id(0, rng) for _ in range(2000)]
    refs = (paired_root / "celebahq_ref.txt").read_text().split()[0].split(",")
    first, last = (r.removesuffix(".jpg") for r in (refs[1], refs[-1]))
    assert abs(picks.count(first) / 2000 - 0.3) < 0.04
    assert abs(picks.count(last) / 2000 - 0.4) < 0.04
    with pytest.raises(UserError, match="reference_rule"):
        CelebAHQEdges(paired_root, split="val", reference_rule="other", **SMALL)


def test_seeded_pairing_is_fixed_within_the_split(root: Path) -> None:
    a = CelebAHQEdges(root, split="val", **SMALL)
    b = CelebAHQEdges(root, split="val", **SMALL)
    pairs = [(a[i]["id"], a[i]["exemplar_id"]) for i in range(len(a))]
    assert pairs == [(b[i]["id"], b[i]["exemplar_id"]) for i in range(len(b))]
    assert all(q != e and e in a.ids for q, e in pairs)
    assert "seeded" in a.protocol()["pairing"] and a.dataset_key.endswith("seed0")
    other = CelebAHQEdges(root, split="val", seed=3, **SMALL)
    assert other.dataset_key != a.dataset_key


def test_cache_stores_the_edge_tensor(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = CelebAHQEdges(root, split="val", cache_dir=cache, **SMALL)
    samples = [first[i] for i in range(len(first))]
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == 4 and all(f.parent.name.startswith("edges15-v2-canny_official-48px-") for f in files)

    def no_edges(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(celebahq, "edge_tensor", no_edges)
    second = CelebAHQEdges(root, split="val", cache_dir=cache, **SMALL)
    for i, sample in enumerate(samples):
        again = second[i]
        assert torch.equal(again["semantics"], sample["semantics"]) and torch.equal(again["labels"], sample["labels"])
    with pytest.raises(AssertionError, match="cache was not used"):
        CelebAHQEdges(root, split="train", cache_dir=cache, **SMALL)[0]  # another load size: another cache
    with pytest.raises(AssertionError, match="cache was not used"):
        CelebAHQEdges(root, split="val", cache_dir=cache, canny="current", **SMALL)[0]  # another Canny: another cache


@pytest.mark.parametrize("fault", ["garbage photo", "truncated photo", "broken mask"])
def test_an_unreadable_file_skips_every_pair_that_reads_it_and_re_pairs_none(root: Path, fault: str) -> None:
    pairs = evaluation_pairs(CelebAHQEdges(root, split="val", **SMALL))
    face = pairs[0][1]  # an exemplar of one pair, and the input of its own
    if fault == "broken mask":
        path = root / "CelebAMask-HQ-mask-anno" / str(int(face) // 2000) / f"{int(face):05d}_nose.png"
        path.write_bytes(b"broken")
    else:
        path = root / "CelebA-HQ-img" / f"{face}.jpg"
        cut = b"not a jpeg at all" if fault == "garbage photo" else path.read_bytes()[: path.stat().st_size // 2]
        path.write_bytes(cut)
    val = CelebAHQEdges(root, split="val", **SMALL)
    assert_only_its_pairs_are_skipped(val, pairs, face, path)
    assert str(path) in val.protocol()["bad_files"]
    if fault != "broken mask":  # the quick scan decodes photos (masks are read when the pair is)
        with pytest.raises(UserError, match=f"{face}.jpg"):
            CelebAHQEdges(root, split="val", strict=True, **SMALL)

    broken = root / "CelebA-HQ-img" / "701.jpg"  # a train photo, found only while loading
    broken.write_bytes(b"junk")
    train = CelebAHQEdges(root, split="train", verify_images="none", real_reference_probability=0.0, **SMALL)
    ids = [train[i]["id"] for i in range(len(train))]
    assert "701" not in ids and len(ids) == len(train)
    assert train.protocol()["skipped_images"] == 1 and train.bad_files.records.keys() == {str(broken)}
    strict = CelebAHQEdges(root, split="train", verify_images="none", strict=True, **SMALL)
    with pytest.raises(UserError, match="701.jpg"):
        [strict[i] for i in range(len(strict))]


def _batches(root: Path, seed: int) -> list[dict]:
    dm = TranslationDataModule(
        dataset=partial(CelebAHQEdges, root=root, **SMALL), batch_size=4, num_workers=2, seed=seed
    )
    return list(dm.train_dataloader())


def test_training_batches_are_reproducible_with_workers(root: Path) -> None:
    a, b, c = _batches(root, 7), _batches(root, 7), _batches(root, 8)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert x["id"] == y["id"] and x["exemplar_id"] == y["exemplar_id"]
        for key in ("semantics", "image", "exemplar", "exemplar_semantics", "labels", "exemplar_labels"):
            assert torch.equal(x[key], y[key]), key
    assert any(not torch.equal(x["image"], z["image"]) for x, z in zip(a, c, strict=True))


def test_errors_name_what_is_missing(root: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        CelebAHQEdges(tmp_path / "nowhere", split="val")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "CelebAMask-HQ" in message and "CoCosNet" in message
    with pytest.raises(UserError, match="no_such_list.txt"):
        CelebAHQEdges(root, split="train", pairs=str(tmp_path / "no_such_list.txt"))
    with pytest.raises(UserError, match="load_size"):
        CelebAHQEdges(root, split="train", image_size=64, load_size=48)
    (root / "val.txt").unlink()
    with pytest.raises(UserError, match=str(root / "val.txt")):
        CelebAHQEdges(root, split="val")
    (root / "CelebA-HQ-img" / "1402.jpg").unlink()
    with pytest.raises(UserError, match=str(root / "CelebA-HQ-img" / "1402.jpg")):
        CelebAHQEdges(root, split="train")


def test_an_edited_mask_gets_a_fresh_edge_tensor_not_the_cached_one(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds = CelebAHQEdges(root, split="val", cache_dir=cache, **SMALL)
    sample_id = ds.ids[0]
    before = ds[0]["semantics"]
    nose = ds.mask_path(sample_id, "nose")
    assert nose.is_file()
    Image.new("L", Image.open(nose).size, 0).save(nose)  # the nose is gone: its edges must go too
    fresh = CelebAHQEdges(root, split="val", **SMALL)[0]["semantics"]  # no cache: the truth
    again = CelebAHQEdges(root, split="val", cache_dir=cache, **SMALL)[0]["semantics"]
    assert not torch.equal(fresh, before) and torch.equal(again, fresh)
    assert len(list(cache.rglob(f"{sample_id}-*.npz"))) == 2  # the old entry stays; it is never read again
