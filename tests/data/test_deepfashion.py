"""DeepFashion as CoCosNet reads it, on layouts the tests write (midms.testing.fake_deepfashion): the split lists in
order, the 20-channel pose input checked against independent references, the video-like pairing, missing and
corrupt files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

from midms.data.contract import validate_sample
from midms.data.deepfashion import DeepFashion, sample_id_of
from midms.data.images import DatasetRootMissing
from midms.data.pose import limb_distance, pose_input, read_pose, render_pose
from midms.errors import UserError
from midms.testing.fake_deepfashion import write_fake_layout

SMALL = {"image_size": 32, "load_size": 40, "flip": False, "real_reference_probability": 0.0}
# CoCosNet's data/deepfashion_dataset.py (github.com/microsoft/CoCosNet), get_label_tensor: OpenPose's colours as
# drawn on a BGR canvas (the first, keypoint 0's, is [255, 0, 0]; limb 12 joins keypoints 2 and 1 in [0, 0, 255]),
# circles of radius 4, limbs blended at 0.6, ellipses 4 px wide, distances divided by 3
NOSE_BGR, NECK_TO_NOSE_BGR, LIMB_12 = (255, 0, 0), (0, 0, 255), 12
RADIUS, BLEND, HALF_WIDTH, DIVISOR = 4, 0.6, 4, 3


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path / "deepfashion"
    return root, write_fake_layout(root)


def test_samples_follow_the_contract_in_the_split_lists_order(layout):
    root, paths = layout
    for split in ("train", "val"):
        ds = DeepFashion(root, split=split, **SMALL)
        assert ds.ids == [sample_id_of(p) for p in paths[split]]  # list order, Windows separators read
        assert ds.spec.semantic_nc == 20 and ds.spec.num_classes is None and not ds.spec.has_target
        for i in range(len(ds)):
            sample = ds[i]
            validate_sample(sample, ds.spec, where=f"{split}[{i}]")
            assert "labels" not in sample  # the In-shop release has no region labels
            assert sample["semantics"][3:].min() == 0.0  # every fake person has at least one limb
    assert sample_id_of("img/WOMEN/Dresses/id_00000244/02_1_front.jpg") == "WOMEN-Dresses-id_00000244-02_1_front"


def _person(rows: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    candidate = np.array([[x, y, 0.9, i] for i, (x, y) in enumerate(rows.values())])
    subset = np.full(20, -1.0)
    for i, keypoint in enumerate(rows):
        subset[keypoint] = i
    return candidate, subset


def test_a_lone_keypoint_is_a_circle_in_its_rgb_colour_and_no_limb_is_far_everywhere():
    candidate, subset = _person({0: (20.0, 12.0)})
    out = pose_input(candidate, subset, height=40, width=40, size=40)
    rgb = out[:3, 12, 20]
    assert tuple(rgb) == NOSE_BGR[::-1]  # drawn in BGR, read as RGB
    yy, xx = np.mgrid[:40, :40]
    inside = (yy - 12) ** 2 + (xx - 20) ** 2 <= (RADIUS - 1) ** 2
    assert (out[2][inside] == 255).all() and (
        out[:3][:, (yy - 12) ** 2 + (xx - 20) ** 2 > (RADIUS + 1) ** 2] == 0
    ).all()
    assert (out[3:] == 255).all()  # no limb: every pixel is at the clipped distance


def test_a_limb_is_blended_at_0_6_and_its_distance_map_is_the_l1_distance_over_3():
    candidate, subset = _person({0: (30.0, 10.0), 1: (30.0, 50.0)})  # nose above neck: a vertical limb
    out = pose_input(candidate, subset, height=64, width=64, size=64)
    mid = out[:3, 30, 30]  # the limb's middle, away from both circles: 0.6 x its colour over black
    assert tuple(mid) == tuple(round(BLEND * c) for c in NECK_TO_NOSE_BGR[::-1])
    # the limb's mask, drawn independently: OpenCV's ellipse polygon around the limb's centre, 4 px half-width
    polygon = cv2.ellipse2Poly((30, 30), (20, HALF_WIDTH), 90, 0, 360, 1)
    mask = np.zeros((64, 64), np.uint8)
    cv2.fillConvexPoly(mask, polygon, 1)
    distance = ndi.distance_transform_cdt(mask == 0, metric="taxicab")  # scipy's L1 distance, not OpenCV's
    expected = np.clip(distance / DIVISOR, 0, 255).astype(np.uint8)
    assert np.array_equal(out[3 + LIMB_12], expected)
    others = [k for k in range(17) if k != LIMB_12]
    assert (out[3:][others] == 255).all()


def test_the_input_is_drawn_at_the_photo_size_then_resized_nearest_and_bilinear():
    candidate, subset = _person({0: (30.0, 10.0), 1: (30.0, 50.0), 2: (10.0, 50.0)})
    small = pose_input(candidate, subset, height=64, width=48, size=32)
    skeleton, limbs = render_pose(candidate, subset, height=64, width=48)
    assert skeleton.shape == (64, 48, 3) and limbs.shape == (17, 64, 48)
    expected = np.asarray(Image.fromarray(skeleton).resize((32, 32), Image.NEAREST)).transpose(2, 0, 1)
    assert np.array_equal(small[:3], expected)
    for k in range(17):
        distance = Image.fromarray(limb_distance(limbs[k])).resize((32, 32), Image.BILINEAR)
        assert np.array_equal(small[3 + k], np.asarray(distance))
    assert (small[3:] < 255).sum() > 0 and (small[3:] == 0).any()


def test_evaluation_pairs_are_the_self_pairs_first_else_the_lists_last_reference(layout):
    root, paths = layout
    ds = DeepFashion(root, split="val", **SMALL)
    self_pairs = {}
    for line in (root / "deepfashion_self_pair.txt").read_text().splitlines():
        entries = line.replace("\\", "/").split(",")
        self_pairs[entries[0]] = entries[1:]
    listed = {e[0]: e[1:] for e in (line.replace("\\", "/").split(",") for line in
              (root / "deepfashion_ref_test.txt").read_text().split())}  # fmt: skip
    assert ds.pairs_from_file == len(ds) == 6
    for i, rel in enumerate(paths["val"]):
        expected = self_pairs[rel][0] if rel in self_pairs else listed[rel][-1]
        sample = ds[i]
        assert sample["exemplar_id"] == sample_id_of(expected)
        assert bool(sample["paired"]) is False
    assert any(rel not in self_pairs for rel in paths["val"])  # the last garment's exemplar: a training photo
    assert "deepfashion_self_pair.txt" in ds.protocol()["pairing"]


def test_training_takes_the_other_view_of_the_same_garment_or_the_photo_itself_both_paired(layout):
    root, paths = layout
    ds = DeepFashion(root, split="train", **SMALL)
    for i, rel in enumerate(paths["train"]):
        sample = ds[i]
        assert bool(sample["paired"]) is True  # real_reference_probability 0: CoCosNet's self_ref is 1
        exemplar = ds._rel[sample["exemplar_id"]]
        same = Path(exemplar).parent == Path(rel).parent and Path(exemplar).name[:2] == Path(rel).name[:2]
        assert same
    always = DeepFashion(root, split="train", **{**SMALL, "real_reference_probability": 1.0})
    drawn = [always[i] for i in range(len(always))]
    assert not any(bool(s["paired"]) for s in drawn)
    assert any(s["exemplar_id"] != s["id"] for s in drawn)
    vgg = DeepFashion(root, split="val", video_like=False, **SMALL)  # CoCosNet's other rule: the first reference
    listed = {e[0]: e[1:] for e in (line.replace("\\", "/").split(",") for line in
              (root / "deepfashion_ref_test.txt").read_text().split())}  # fmt: skip
    assert [vgg.exemplar_id(i) for i in range(len(vgg))] == [sample_id_of(listed[p][0]) for p in paths["val"]]


def test_without_the_same_garment_check_training_takes_the_listed_exemplar_paired_as_dynast(layout):
    # DynaST's data/pix2pix_dataset.py (github.com/Huage001/DynaST): with --video_like the training exemplar is the
    # ref_dict's first entry (the self pair, else the line's last reference) and self_ref is 1, with no folder test
    root, paths = layout
    checked = DeepFashion(root, split="train", **SMALL)
    unchecked = DeepFashion(root, split="train", same_garment_check=False, **SMALL)
    self_pairs = {}
    for line in (root / "deepfashion_self_pair.txt").read_text().splitlines():
        entries = line.replace("\\", "/").split(",")
        self_pairs[entries[0]] = entries[1:]
    listed = {e[0]: e[1:] for e in (line.replace("\\", "/").split(",") for line in
              (root / "deepfashion_ref.txt").read_text().split())}  # fmt: skip
    differs = 0
    for i, rel in enumerate(paths["train"]):
        expected = self_pairs[rel][0] if rel in self_pairs else listed[rel][-1]
        sample = unchecked[i]
        assert sample["exemplar_id"] == sample_id_of(expected)
        assert bool(sample["paired"]) is True
        differs += checked[i]["exemplar_id"] != sample["exemplar_id"]
    assert differs == 3  # the last garment's three views: another garment's photo, which the check refuses
    assert "no same-garment test" in unchecked.protocol()["pairing"]
    assert unchecked.dataset_key != checked.dataset_key


def test_the_deepfashion_hd_reader_draws_on_a_1024_canvas_and_evaluates_on_the_first_reference(layout):
    # CoCosNet v2 data/deepfashionHD_dataset.py (github.com/microsoft/CoCosNet-v2): a 1024x1024 canvas, keypoint
    # radius 20, limb half-width 20; its test command has no --video_like (get_ref_vgg: the first reference)
    root, paths = layout
    hd = {"pose_canvas": 1024, "pose_radius": 20, "pose_stick": 20}
    val = DeepFashion(root, split="val", eval_video_like=False, **hd, **SMALL)
    sample = val[0]
    candidate, subset = read_pose(val.pose_stem(sample["id"]))
    expected = pose_input(candidate, subset, 1024, 1024, SMALL["image_size"], 20, 20)
    assert torch.equal(sample["semantics"], torch.from_numpy(expected.astype(np.float32) / 255))
    thin = pose_input(candidate, subset, 1024, 1024, SMALL["image_size"])
    assert not np.array_equal(expected, thin)  # the widths matter
    listed = {e[0]: e[1:] for e in (line.replace("\\", "/").split(",") for line in
              (root / "deepfashion_ref_test.txt").read_text().split())}  # fmt: skip
    assert [val.exemplar_id(i) for i in range(len(val))] == [sample_id_of(listed[p][0]) for p in paths["val"]]
    train = DeepFashion(root, split="train", eval_video_like=False, **hd, **SMALL)
    assert train.video_like is True  # training keeps --video_like
    assert "pose1024r20s20" in val.dataset_key


def test_missing_files_are_named_and_a_corrupt_pose_file_skips_its_pair(layout):
    root, paths = layout
    with pytest.raises(DatasetRootMissing, match="DeepFashion not found"):
        DeepFashion(root.parent / "nowhere", split="val", **SMALL)
    pose = root / paths["val"][1].replace("img/", "pose/", 1).replace(".jpg", "_subset.txt")
    pose.write_text("1 2 three\n")
    val = DeepFashion(root, split="val", **SMALL)
    bad = val.scan(thorough=True)
    assert list(bad) == [str(pose)] and "not a table of numbers" in bad[str(pose)]
    skipped = val[1]
    assert skipped.id == val.ids[1] and str(pose) in skipped.reason  # never a substituted pair
    pose.unlink()
    with pytest.raises(UserError, match="missing") as err:
        DeepFashion(root, split="val", **SMALL)
    assert str(pose) in str(err.value)
    (root / "val.txt").unlink()
    with pytest.raises(UserError, match="val.txt"):
        DeepFashion(root, split="val", **SMALL)


def test_parsing_maps_give_region_labels(layout):
    root, paths = layout
    for rel in paths["val"] + paths["train"]:
        target = root / "parsing" / Path(rel).relative_to("img").with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        labels = np.zeros((64, 48), np.uint8)
        labels[20:40] = 3
        Image.fromarray(labels).save(target)
    with pytest.raises(UserError, match="parsing_classes"):
        DeepFashion(root, split="val", parsing="parsing", **SMALL)
    ds = DeepFashion(root, split="val", parsing="parsing", parsing_classes=8, **SMALL)
    sample = ds[0]
    validate_sample(sample, ds.spec)
    assert ds.spec.num_classes == 8 and set(torch.unique(sample["labels"]).tolist()) == {0, 3}
