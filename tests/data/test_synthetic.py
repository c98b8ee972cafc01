"""The synthetic dataset: deterministic, contract-conforming, and its target is the true translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midms.data.contract import validate_sample
from midms.data.synthetic import SyntheticPairs, class_parts, edge_map, render
from midms.errors import UserError

SIZES = {"train": 12, "val": 4, "test": 6}
#: the shapes the dataset is designed with (docs/datasets.md, "The synthetic dataset")
FILLED = {"triangle", "rectangle", "diamond", "pentagon", "cross", "ellipse"}
THIN = {"ring", "line"}


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
        labels, _, frames = ds.scene(i)
        ex_labels, ex_style, _ = ds.scene(j)
        np.testing.assert_array_equal(s["labels"].numpy(), labels)
        np.testing.assert_array_equal(s["exemplar_labels"].numpy(), ex_labels)
        np.testing.assert_allclose(s["target"].numpy(), render(labels, ex_style, frames))
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
    ex_style = ds.scene(ds.exemplar_index(0)).style
    labels = s["labels"].numpy()
    flat = [k for k in np.unique(labels) if ex_style.texture[k] == "flat"]
    for k in flat:
        np.testing.assert_allclose(
            s["target"].numpy()[:, labels == k].T,
            np.tile(np.clip(ex_style.palette[k], -1, 1), ((labels == k).sum(), 1)),
            atol=1e-6,
        )


def test_semantics_switch_edges_and_one_hot():
    e, lab = make(input="edges", edge_falloff=0)[1], make(input="labels")[1]
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


def test_soft_edges_fall_linearly_with_the_distance_to_the_nearest_boundary_pixel():
    ds = make(image_size=48)  # the default falloff: 1/16 of the side, 3 px here
    labels = ds[2]["labels"].numpy()
    soft = ds[2]["semantics"].numpy()[0]
    boundary = np.argwhere(edge_map(labels) > 0)
    grid = np.stack(np.meshgrid(np.arange(48), np.arange(48), indexing="ij"), -1).reshape(-1, 1, 2)
    nearest = np.sqrt(((grid - boundary[None]) ** 2).sum(-1)).min(1).reshape(48, 48)  # brute force
    np.testing.assert_allclose(soft, np.clip(1 - nearest / 3.0, 0, 1), atol=1e-6)
    assert soft.max() == 1.0 and ((soft > 0) & (soft < 1)).any()  # graded, not binary
    assert make(image_size=48, edge_falloff=0.125)[2]["semantics"].sum() > soft.sum()


def test_soft_edges_keep_every_boundary_at_a_quarter_of_the_resolution():
    """Nearest sampling to 1/4 (MIDMs' latent grid at f4) keeps a third of the cells a binary outline crosses, and
    nearly all with soft edges (a boundary pixel in the far corner of a cell is 4.2 px from the sampled one)."""
    kept = {}
    for falloff in (0.0, 1 / 16):
        ds = make(image_size=64, edge_falloff=falloff)
        ratios = []
        for i in range(len(ds)):
            edges = ds[i]["semantics"][None]
            crossed = torch.nn.functional.max_pool2d((edges == 1).float(), 4)  # 4x4 cells a boundary crosses
            sampled = torch.nn.functional.interpolate(edges, size=16, mode="nearest") > 0
            ratios.append(float((sampled & (crossed > 0)).sum() / crossed.sum()))
        kept[falloff] = np.mean(ratios)
    assert kept[0.0] < 0.5 and kept[1 / 16] > 0.95, kept


def test_every_foreground_class_usually_present_and_scenes_scale_with_size():
    ds = make(image_size=64)
    present = [len(np.unique(ds.scene(i)[0])) for i in range(len(ds))]
    assert np.mean(present) >= 5  # 6 classes are drawn; occlusion may hide one now and then
    small, large = make(image_size=32).scene(2)[0], make(image_size=128).scene(2)[0]
    # the same scene at two resolutions: the down-sampled large map mostly agrees with the small one
    assert (large[::4, ::4] == small).mean() > 0.8


@pytest.mark.parametrize("num_classes", [2, 6, 12, 32])
@pytest.mark.parametrize("thin", [False, True])
def test_every_class_has_its_own_shape_so_edges_say_which_class(num_classes, thin):
    parts = class_parts(num_classes, thin)
    assert len(parts) == num_classes - 1 and parts[0].shape == "ellipse"
    assert all(parts[0].radius > p.radius for p in parts[1:])  # class 1 is the large body the parts sit on
    # shape and size together tell every foreground class apart (a repeated shape comes back larger)
    assert len({(p.shape, round(p.radius, 6)) for p in parts}) == len(parts)
    kinds = {p.shape for p in parts[1:]}
    assert kinds <= FILLED | THIN
    if num_classes >= 2 + len(FILLED) + len(THIN):
        assert bool(kinds & THIN) == thin
    assert class_parts(num_classes, thin) == parts  # shared by every split and seed


def test_parts_layout_is_aligned_and_scattered_layout_is_not():
    def agreement(ds):  # how often input and exemplar share a label at the same pixel (the identity warp)
        return np.mean([(ds.scene(i)[0] == ds.scene(ds.exemplar_index(i))[0]).mean() for i in range(len(ds))])

    parts, scattered = make(image_size=64), make(image_size=64, layout="scattered")
    assert agreement(parts) > agreement(scattered) + 0.1
    # in the parts layout each class sits near its home: shift ±0.12 and zoom 0.8-1.1 of the arrangement about
    # the centre, then ±0.05 of its own, so the centroid lies within 0.12 + 0.05 + 0.24 * 0.2 (+ rounding)
    homes = [p.home for p in class_parts(6)]
    for i in range(len(parts)):
        labels = parts.scene(i)[0]
        for k in range(2, 6):
            ys, xs = np.nonzero(labels == k)
            if len(xs) > 20:
                centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / 64
                assert np.abs(centroid - np.asarray(homes[k - 1])).max() < 0.12 + 0.05 + 0.048 + 0.03, (i, k)


def test_thin_classes_are_thin():
    ds = make(image_size=64, num_classes=12, thin=True, layout="scattered")
    parts = class_parts(12, thin=True)
    thin_classes = [k for k in range(1, 12) if parts[k - 1].shape in THIN]
    assert thin_classes
    for i in range(len(ds)):
        labels = ds.scene(i)[0]
        for k in thin_classes:
            mask = labels == k
            if mask.sum() > 10:  # a thin region loses most of its pixels to a 3×3 erosion
                eroded = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
                assert eroded.sum() < 0.5 * mask.sum(), (i, k)


def test_texture_options_set_amplitude_and_detail_and_the_cache_key():
    soft, hard = make(), make(texture_strength=(0.3, 0.5), texture_detail=16)
    style = hard.scene(0).style
    assert style.amplitude.min() >= 0.3 and style.amplitude.max() <= 0.5
    assert style.noise.shape[-2:] == (16, 16)
    assert soft.scene(0)[1].noise.shape[-2:] == (8, 8)
    # every option that changes the pictures changes the key of the reference-image cache
    keys = {
        make().dataset_key,
        make(layout="scattered").dataset_key,
        make(thin=True).dataset_key,
        make(texture_strength=(0.3, 0.5)).dataset_key,
        make(texture_detail=16).dataset_key,
        make(texture_frame="image").dataset_key,
    }
    assert len(keys) == 6
    assert hard.protocol()["texture_detail"] == 16 and hard.protocol()["layout"] == "parts"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 16}, "32 to 256"),
        ({"input": "depth"}, "dataset.input=edges"),
        ({"split": "holdout"}, "use train, val or test"),
        ({"num_classes": 1}, "2 to 32"),
        ({"layout": "grid"}, "dataset.layout=parts or scattered"),
        ({"texture_strength": (0.5, 0.2)}, "texture_strength"),
        ({"texture_detail": 1}, "texture_detail"),
        ({"texture_frame": "object"}, "dataset.texture_frame=region or image"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        SyntheticPairs(**{"sizes": SIZES, **kwargs})


def reference_image_frame_render(labels, style):
    """A plain reimplementation of the image-frame rendering: stripes by their phase at each pixel's corner,
    noise fields resized bilinearly to the image (torch's resize, not the dataset's sampling)."""
    size = labels.shape[0]
    noise = torch.nn.functional.interpolate(torch.from_numpy(style.noise), size=(size, size), mode="bilinear")
    out = np.zeros((3, size, size))
    for y in range(size):
        for x in range(size):
            k = labels[y, x]
            value = style.palette[k].copy()
            if style.texture[k] == "noise":
                value += style.amplitude[k] * noise[k, :, y, x].numpy()
            elif style.texture[k] == "stripes":
                along = x / size * np.cos(style.angle[k]) + y / size * np.sin(style.angle[k])
                value += style.amplitude[k] * np.sin(2 * np.pi * style.frequency[k] * along)
            out[:, y, x] = value
    return np.clip(out, -1, 1)


def test_image_frame_textures_are_fixed_to_the_image_grid():
    ds = make(image_size=32, texture_frame="image", texture_strength=(0.3, 0.5))
    for i in range(3):
        s = ds[i]
        other = ds.scene(ds.exemplar_index(i))
        assert other.frames is None
        np.testing.assert_allclose(
            s["target"].numpy(), reference_image_frame_render(ds.scene(i).labels, other.style), atol=1e-5
        )
    assert ds.protocol()["texture_frame"] == "image" and make().protocol()["texture_frame"] == "region"


def corresponding_point(frame_from, frame_to, x, y):
    """The point of ``frame_to``'s region with the texture coordinates that (x, y) has in ``frame_from``'s:
    where a correct correspondence of the two parts maps (x, y)."""
    u, v = frame_from.coordinates(x, y)
    du, dv = (u - 0.5) * frame_to.scale, (v - 0.5) * frame_to.scale
    c, s = np.cos(frame_to.angle), np.sin(frame_to.angle)
    return frame_to.centre[0] + c * du - s * dv, frame_to.centre[1] + s * du + c * dv


@pytest.mark.parametrize("layout", ["parts", "scattered"])
def test_region_frame_textures_are_carried_over_by_the_correspondence_of_parts(layout):
    """The default's ground truth is what a correct correspondence gives: each target pixel of a textured region
    equals the exemplar at the corresponding point of the exemplar's region of that class (nearest pixel, so
    within the texture's change over a pixel), while the exemplar at the same pixel (copy_exemplar) does not."""
    size = 128
    ds = make("train", image_size=size, layout=layout, texture_strength=(0.3, 0.5))
    carried, copied = [], []
    for i in range(len(ds)):
        s = ds[i]
        scene, other = ds.scene(i), ds.scene(ds.exemplar_index(i))
        target, exemplar = s["target"].numpy(), s["exemplar"].numpy()
        for k in range(1, ds.num_classes):  # the foreground parts
            if other.style.texture[k] == "flat" or other.style.amplitude[k] * other.style.frequency[k] > 2.5:
                continue  # flat: nothing to carry; the finest stripes change too much within one pixel
            ys, xs = np.nonzero(scene.labels == k)
            qx, qy = corresponding_point(scene.frames[k], other.frames[k], (xs + 0.5) / size, (ys + 0.5) / size)
            qx, qy = np.floor(qx * size).astype(int), np.floor(qy * size).astype(int)
            inside = (qx >= 0) & (qx < size) & (qy >= 0) & (qy < size)
            ok = inside.copy()
            ok[inside] = other.labels[qy[inside], qx[inside]] == k  # not hidden by another part in the exemplar
            if ok.sum() < 20:
                continue
            carried.append(np.abs(target[:, ys[ok], xs[ok]] - exemplar[:, qy[ok], qx[ok]]).mean())
            same = other.labels[ys, xs] == k  # where copy_exemplar has the right class
            if same.sum() >= 20:
                copied.append(np.abs(target[:, ys[same], xs[same]] - exemplar[:, ys[same], xs[same]]).mean())
    assert len(carried) > 10
    # a texture of amplitude 0.3-0.5 that does not follow its part would differ by ~0.3 on average
    assert np.mean(carried) < 0.05, np.mean(carried)
    assert np.mean(copied) > 2 * np.mean(carried), (np.mean(copied), np.mean(carried))


def test_scenes_kept_in_memory_give_the_samples_drawn_anew_up_to_the_budget(monkeypatch):
    from midms.data import synthetic

    monkeypatch.setattr(synthetic, "_DRAWN", synthetic._DrawnScenes())  # this test's own store
    drawn: list[int] = []
    scene = synthetic.SyntheticPairs.scene
    monkeypatch.setattr(synthetic.SyntheticPairs, "scene", lambda self, i: drawn.append(i) or scene(self, i))
    per_scene = 32 * 32 * (1 + 3 * 4 + 4)  # uint8 labels, the float32 rendering (3 channels) and edge map (1)
    for input in ("edges", "labels"):
        fresh = SyntheticPairs("train", 32, input=input, sizes={"train": 8}, memory_cache_mb=0)
        kept = SyntheticPairs("train", 32, input=input, sizes={"train": 8}, memory_cache_mb=1)
        for _ in range(2):  # drawn, then read back
            for i in range(8):
                a, b = kept[i], fresh[i]
                assert a.keys() == b.keys()
                for key in a:
                    if isinstance(a[key], torch.Tensor):
                        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), (input, key)
                    else:
                        assert a[key] == b[key]
    # another instance with the same settings reads the store; with other settings it draws its own scenes
    drawn.clear()
    twin = SyntheticPairs("train", 32, sizes={"train": 8}, memory_cache_mb=1)
    [twin[i] for i in range(8)]
    assert drawn == []
    [SyntheticPairs("train", 32, sizes={"train": 8}, seed=1, memory_cache_mb=1)[i] for i in range(2)]
    assert len(drawn) == 4  # two pairs: each scene and its exemplar
    # the budget: a store that holds two scenes of 32 px keeps two, then draws the rest at every read
    monkeypatch.setattr(synthetic, "_DRAWN", synthetic._DrawnScenes())
    small = SyntheticPairs("train", 32, sizes={"train": 8}, memory_cache_mb=2.5 * per_scene / 2**20)
    drawn.clear()
    [small.drawn(i) for i in range(4)]
    [small.drawn(i) for i in range(4)]
    assert drawn == [0, 1, 2, 3, 2, 3]
    # what a reader gets is its own: writing into it leaves the store as it was
    small.drawn(0)[1].fill_(7.0)
    assert not (small.drawn(0)[1] == 7.0).any()
