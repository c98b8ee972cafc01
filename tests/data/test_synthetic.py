"""The synthetic dataset: deterministic, contract-conforming, and its target is the true translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midms.data.contract import validate_sample
from midms.data.synthetic import SyntheticPairs, edge_map, render
from midms.errors import UserError

SIZES = {"train": 12, "val": 4, "test": 6}


def make(split="test", **kw) -> SyntheticPairs:
    return SyntheticPairs(split=split, sizes=SIZES, **{"image_size": 48, **kw})


@pytest.mark.parametrize("input", ["edges", "labels"])
def test_samples_follow_the_contract(input):
    ds = make(input=input)
    for i in range(len(ds)):
        validate_sample(ds[i], ds.spec, where=f"synthetic[{i}]")
    assert ds.spec.semantic_nc == (1 if input == "edges" else 6)


def test_deterministic_across_instances_and_distinct_across_indices_and_seeds():
    a, b = make()[3], make()[3]
    for key in ("semantics", "image", "exemplar", "target", "labels"):
        assert torch.equal(a[key], b[key]), key
    assert a["exemplar_id"] == b["exemplar_id"]
    assert not torch.equal(make()[3]["image"], make()[4]["image"])
    assert not torch.equal(make(seed=1)[3]["image"], a["image"])
    # the splits are different scenes
    assert not torch.equal(make("train")[3]["labels"], a["labels"])


def test_target_is_the_input_labels_in_the_exemplars_style():
    ds = make(image_size=64)
    for i in range(len(ds)):
        s = ds[i]
        j = ds.exemplar_index(i)
        assert j != i and s["exemplar_id"] == f"test_{j:05d}"
        labels, _ = ds.scene(i)
        ex_labels, ex_style = ds.scene(j)
        np.testing.assert_array_equal(s["labels"].numpy(), labels)
        np.testing.assert_array_equal(s["exemplar_labels"].numpy(), ex_labels)
        np.testing.assert_allclose(s["target"].numpy(), render(labels, ex_style))
        # per class present in both: the target's colour is the exemplar's colour of that class
        for k in np.intersect1d(np.unique(labels), np.unique(ex_labels)):
            tgt = s["target"].numpy()[:, labels == k].mean(1)
            exm = s["exemplar"].numpy()[:, ex_labels == k].mean(1)
            own = s["image"].numpy()[:, labels == k].mean(1)
            assert np.abs(tgt - ex_style.palette[k]).max() < 0.12, (i, k)
            assert np.abs(tgt - exm).max() < 0.2, (i, k)
            # and not the scene's own colour (styles differ unless palettes happen to coincide)
            if np.abs(own - ex_style.palette[k]).max() > 0.3:
                assert np.abs(tgt - own).max() > 0.15


def test_flat_texture_classes_take_the_exemplar_palette_exactly():
    ds = make(image_size=32)
    s = ds[0]
    _, ex_style = ds.scene(ds.exemplar_index(0))
    labels = s["labels"].numpy()
    flat = [k for k in np.unique(labels) if ex_style.texture[k] == "flat"]
    for k in flat:
        np.testing.assert_allclose(
            s["target"].numpy()[:, labels == k].T,
            np.tile(np.clip(ex_style.palette[k], -1, 1), ((labels == k).sum(), 1)),
            atol=1e-6,
        )


def test_semantics_switch_edges_and_one_hot():
    e, lab = make(input="edges")[1], make(input="labels")[1]
    labels = lab["labels"].numpy()
    onehot = lab["semantics"].numpy()
    np.testing.assert_array_equal(onehot.sum(0), 1.0)
    np.testing.assert_array_equal(onehot.argmax(0), labels)
    edges = e["semantics"].numpy()[0]
    assert set(np.unique(edges)) <= {0.0, 1.0} and edges.sum() > 0
    # every edge pixel has a differently labelled 4-neighbour, and every label change is marked
    padded = np.pad(labels, 1, mode="edge")
    differs = np.zeros_like(labels, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != labels
    np.testing.assert_array_equal(edges.astype(bool), differs)
    np.testing.assert_array_equal(edge_map(labels), edges)


def test_every_foreground_class_usually_present_and_scenes_scale_with_size():
    ds = make(image_size=64)
    present = [len(np.unique(ds.scene(i)[0])) for i in range(len(ds))]
    assert np.mean(present) >= 5  # 6 classes are drawn; occlusion may hide one now and then
    small, large = make(image_size=32).scene(2)[0], make(image_size=128).scene(2)[0]
    # the same scene at two resolutions: the down-sampled large map mostly agrees with the small one
    assert (large[::4, ::4] == small).mean() > 0.8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 16}, "32 to 256"),
        ({"input": "depth"}, "dataset.input=edges"),
        ({"split": "holdout"}, "use train, val or test"),
        ({"num_classes": 1}, "2 to 32"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        SyntheticPairs(**{"sizes": SIZES, **kwargs})
