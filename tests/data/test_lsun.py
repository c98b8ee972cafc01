"""LSUN-Churches reader and LMDB export on generated copies (midms.testing.fake_lsun, a small LMDB)."""

from __future__ import annotations

import io
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from pairs import assert_only_its_pairs_are_skipped, evaluation_pairs
from PIL import Image

from midms.data import lsun
from midms.data.contract import validate_sample
from midms.data.lsun import LSUNChurch, export_lmdb
from midms.errors import UserError
from midms.testing.fake_lsun import write_fake_layout

SMALL = {"image_size": 32, "load_size": 40}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_fake_layout(tmp_path / "lsun_church")
    return tmp_path / "lsun_church"


def test_samples_follow_the_contract_and_one_hot_sums_to_one(root: Path) -> None:
    for split in ("train", "val"):
        ds = LSUNChurch(root, split=split, **SMALL)
        assert ds.spec.semantic_nc == 151 and ds.spec.num_classes == 151 and not ds.spec.has_target
        for i in range(len(ds)):
            sample = ds[i]
            validate_sample(sample, ds.spec, where=f"{split}[{i}]")
            for sem, labels in (("semantics", "labels"), ("exemplar_semantics", "exemplar_labels")):
                assert torch.all(sample[sem].sum(dim=0) == 1.0)
                assert torch.equal(sample[sem].argmax(dim=0), sample[labels])
    val = LSUNChurch(root, split="val", **SMALL)
    stem = val.ids[0]
    raw = np.asarray(Image.open(root / "validation" / f"{stem}.png"))
    expected = np.asarray(Image.fromarray(raw).resize((32, 32), Image.NEAREST)).astype(np.int64)
    expected[expected == 255] = 150  # CoCosNet: the don't-care value goes to the last channel
    assert (raw == 255).any() or (raw == 0).any()
    assert np.array_equal(val[0]["labels"].numpy(), expected)


def test_pairing_list_is_matched_by_stem(tmp_path: Path) -> None:
    root = tmp_path / "lsun_church"
    splits = write_fake_layout(root, suffix=".webp", pairing_lists=True)  # lists name <stem>.jpg
    val = LSUNChurch(root, split="test", **SMALL)
    assert val.split == "val" and val.pairs_from_file == len(val) == 4
    listed = dict(line.split(",")[:2] for line in (root / "lsun_church_ref_test.txt").read_text().split())
    for i in range(len(val)):
        sample = val[i]
        assert f"{sample['exemplar_id']}.jpg" == listed[f"{sample['id']}.jpg"]
    train = LSUNChurch(root, split="train", real_reference_probability=1.0, hard_reference_probability=1.0, **SMALL)
    ids = splits["train"]
    assert all(train.exemplar_id(i) == ids[(ids.index(train.ids[i]) + 2) % len(ids)] for i in range(len(train)))


def test_missing_label_map_is_named(root: Path) -> None:
    label = next((root / "training").glob("*.png"))
    label.unlink()
    with pytest.raises(UserError, match=str(label)) as err:
        LSUNChurch(root, split="train", **SMALL)
    assert "ADE20K" in str(err.value)
    with pytest.raises(UserError, match=str(root / "nowhere")) as err:
        LSUNChurch(root / "nowhere", split="val")
    assert "church_outdoor" in str(err.value) and "lsun_church_ref_test.txt" in str(err.value)


@pytest.mark.parametrize("fault", ["truncated photo", "broken label map"])
def test_an_unreadable_file_skips_every_pair_that_reads_it_and_re_pairs_none(root: Path, fault: str) -> None:
    pairs = evaluation_pairs(LSUNChurch(root, split="val", **SMALL))
    key = pairs[0][1]  # an exemplar of one pair, and the input of its own
    path = root / "validation" / f"{key}.{'jpg' if fault == 'truncated photo' else 'png'}"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    val = LSUNChurch(root, split="val", **SMALL)
    assert_only_its_pairs_are_skipped(val, pairs, key, path)
    assert val.protocol()["bad_files"] == [str(path)]
    if fault == "truncated photo":  # found by the scan on construction (a cut label map: when its pair is read)
        with pytest.raises(UserError, match=path.name):
            LSUNChurch(root, split="val", strict=True, **SMALL)


def test_training_leaves_out_unreadable_samples(root: Path) -> None:
    label = sorted((root / "training").glob("*.png"))[0]  # a label map with class ids outside ADE20K's
    Image.fromarray(np.full((48, 64), 200, dtype=np.uint8)).save(label)
    train = LSUNChurch(root, split="train", verify_images="none", **SMALL)
    ids = [train[i]["id"] for i in range(len(train))]
    assert label.stem not in ids and train.bad_files.records.keys() == {str(label)}


def _make_lmdb(path: Path) -> dict[str, tuple[bytes, np.ndarray]]:
    """A small LSUN-like database: WebP values (as the release), one JPEG and one PNG."""
    rng = np.random.default_rng(0)
    items: dict[str, tuple[bytes, np.ndarray]] = {}
    for i, fmt in enumerate(["WEBP", "WEBP", "WEBP", "JPEG", "PNG", "WEBP"]):
        pixels = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt != "PNG" else {}))
        key = f"{i:02d}" + rng.bytes(19).hex()
        items[key] = (buffer.getvalue(), pixels)
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, (data, _) in items.items():
            txn.put(key.encode("ascii"), data)
    env.close()
    return items


def test_lmdb_export_round_trips_and_resumes(tmp_path: Path) -> None:
    items = _make_lmdb(tmp_path / "church_outdoor_val_lmdb")
    out = tmp_path / "lsun_church" / "validation"
    first = export_lmdb(tmp_path / "church_outdoor_val_lmdb", out, limit=3)
    assert first == {"written": 3, "skipped": 0, "reencoded": 0, "total": 3}
    assert lsun.main(["export", str(tmp_path / "church_outdoor_val_lmdb"), str(out)]) == 0
    files = {p.stem: p for p in out.iterdir()}
    assert sorted(files) == sorted(items) and not list(out.glob(".*"))  # every key, no partial file left
    for key, (data, pixels) in items.items():
        path = files[key]
        if data[:4] == b"RIFF" or data[:3] == b"\xff\xd8\xff":
            assert path.read_bytes() == data  # the release's bytes, unchanged
            assert path.suffix == (".webp" if data[:4] == b"RIFF" else ".jpg")
        else:
            assert path.suffix == ".webp"  # PNG would clash with the label maps: lossless WebP
            assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), pixels)
    mtimes = {p: p.stat().st_mtime_ns for p in files.values()}
    again = export_lmdb(tmp_path / "church_outdoor_val_lmdb", out)
    assert again == {"written": 0, "skipped": 6, "reencoded": 0, "total": 6}
    assert {p: p.stat().st_mtime_ns for p in files.values()} == mtimes
    for key in items:  # the exported folder is a split once label maps are added
        Image.fromarray(np.full((24, 32), 3, dtype=np.uint8)).save(out / f"{key}.png")
    (out.parent / "training").mkdir()
    ds = LSUNChurch(out.parent, split="val", **SMALL)
    assert sorted(ds.ids) == sorted(items)
    validate_sample(ds[0], ds.spec)
    assert lsun.main(["export", str(tmp_path / "missing_lmdb"), str(out)]) == 2
