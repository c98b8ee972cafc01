"""Semantic consistency and style relevance against plain numpy loops and hand-computed values.

The rules are those of the authors' scripts (fnzhan/UNITE util/sc_vgg_metric.py = AiArt-Gao/MATEBIT
evaluation/sc_vgg_metric.py; MATEBIT evaluation/ref_vgg_metric.py; UNITE util/vgg_style_relevance.py): features
up-sampled by nearest neighbour; semantic consistency over every class of the real image's label map (0 included),
weighted by its area; style relevance over the classes above 0 present in both maps, weighted by the output's
areas, 0 for an image without such a class (and it counts in the mean).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from midms.errors import MetricSkipped, UserError
from midms.metrics.base import EvalBatch, EvalContext
from midms.metrics.semantic import SemanticConsistency, region_means
from midms.metrics.style import StyleRelevance
from midms.nn.vgg import VGG19Features

SEM_LAYERS = ("relu3_2", "relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_2", "relu2_2")


class PixelFeatures(nn.Module):
    """A stub extractor whose every "layer" is the image itself, so values can be computed by hand."""

    weights_id = "pixels"

    def __init__(self, layers) -> None:
        super().__init__()
        self.layers = tuple(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {layer: x for layer in self.layers}


def tiny_vgg(layers) -> VGG19Features:
    torch.manual_seed(0)
    return VGG19Features(layers, weights=None, widths=(4, 8, 8, 16, 16))


def ctx(tmp_path: Path) -> EvalContext:
    return EvalContext(samples_dir=tmp_path, reference_dir=tmp_path, cache_dir=tmp_path, dataset_key="k", image_size=8)


def blocks(b: int, size: int, classes: list[int], seed: int) -> torch.Tensor:
    """B×size×size label maps of 2×2-pixel blocks drawn from ``classes``."""
    g = torch.Generator().manual_seed(seed)
    small = torch.tensor(classes)[torch.randint(len(classes), (b, size // 2, size // 2), generator=g)]
    return small.repeat_interleave(2, 1).repeat_interleave(2, 2)


def np_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))


def np_region_score(fa: np.ndarray, fb: np.ndarray, la: np.ndarray, lb: np.ndarray, style: bool = False) -> float:
    """C×H×W features and H×W labels of two images: Σ_c share_a(c)·cos(mean_a(c), mean_b(c)) over shared c;
    ``style``: classes above 0 only, and 0 when none is shared."""
    total, score = 0.0, 0.0
    for c in np.unique(la):
        if c < 0 or (style and c == 0) or not (lb == c).any():
            continue
        w = (la == c).mean()
        score += w * np_cos(fa[:, la == c].mean(axis=1), fb[:, lb == c].mean(axis=1))
        total += w
    return score / total if total else (0.0 if style else float("nan"))


def run(metric, tmp_path: Path, batch: EvalBatch) -> tuple[dict, dict]:
    metric.setup(ctx(tmp_path))
    metric.check_batch(batch)
    per_image = metric.update(batch)
    return per_image, metric.compute(ctx(tmp_path))


# -- semantic consistency ---------------------------------------------------------------------------


def test_semantic_identical_images_give_one(tmp_path: Path) -> None:
    x = torch.rand(3, 3, 32, 32)
    batch = EvalBatch(fake=x, image=x.clone(), exemplar=torch.rand(3, 3, 32, 32), names=list("abc"))
    batch.labels = blocks(3, 32, [0, 1, 2], seed=0)
    per_image, values = run(SemanticConsistency(extractor=tiny_vgg(SEM_LAYERS)), tmp_path, batch)
    assert set(values) == {"semantic", "semantic_relu3_2", "semantic_relu4_2", "semantic_relu5_2"}
    for key, v in values.items():
        assert v == pytest.approx(1.0, abs=1e-5), key
    assert per_image["semantic"].shape == (3,)


def test_semantic_class_weighted_value_matches_numpy_loop(tmp_path: Path) -> None:
    torch.manual_seed(1)
    fake, image = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    labels = blocks(2, 8, [0, 3, 7], seed=1)
    batch = EvalBatch(fake=fake, image=image, exemplar=image, names=["a", "b"], labels=labels)
    metric = SemanticConsistency(extractor=PixelFeatures(SEM_LAYERS))
    per_image, values = run(metric, tmp_path, batch)
    expected = [
        np_region_score(fake[i].numpy(), image[i].numpy(), labels[i].numpy(), labels[i].numpy()) for i in range(2)
    ]
    np.testing.assert_allclose(per_image["semantic"].numpy(), expected, rtol=1e-5)
    assert values["semantic_relu4_2"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert metric.protocol["regions"] == "labels" and metric.protocol["weights"] == "pixels"


def test_semantic_upsampled_features_match_explicit_resize(tmp_path: Path) -> None:
    torch.manual_seed(2)
    fake, image = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    labels = blocks(2, 32, [0, 1, 2, 5], seed=2)
    extractor = tiny_vgg(SEM_LAYERS)
    batch = EvalBatch(fake=fake, image=image, exemplar=image, names=["a", "b"], labels=labels)
    per_image, _ = run(SemanticConsistency(extractor=extractor), tmp_path, batch)
    with torch.no_grad():
        ff, fr = extractor(fake), extractor(image)
    for layer in SEM_LAYERS:
        up_f = F.interpolate(ff[layer], size=(32, 32), mode="nearest").numpy()
        up_r = F.interpolate(fr[layer], size=(32, 32), mode="nearest").numpy()
        expected = [np_region_score(up_f[i], up_r[i], labels[i].numpy(), labels[i].numpy()) for i in range(2)]
        np.testing.assert_allclose(per_image[f"semantic_{layer}"].numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_region_means_equal_explicit_resize(mode) -> None:
    torch.manual_seed(3)
    feats = torch.rand(2, 5, 4, 6)
    masks = (torch.rand(2, 3, 16, 24) > 0.5).float()
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(feats, size=(16, 24), mode=mode, **kwargs)
    expected = torch.einsum("bkyx,bcyx->bkc", masks, up) / masks.sum((-2, -1)).unsqueeze(-1)
    torch.testing.assert_close(region_means(feats, masks, mode), expected, rtol=1e-5, atol=1e-6)


def test_features_are_upsampled_by_nearest_neighbour_by_hand() -> None:
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)  # each value covers a 2×2 block at 4×4
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :2, :2] = 1  # the whole block of 1
    mask[0, 0, 0, 2] = 1  # and one pixel of the block of 2
    assert float(region_means(feats, mask)) == pytest.approx((4 * 1.0 + 2.0) / 5)  # bilinear would blend


def test_semantic_single_class_is_whole_image_cosine(tmp_path: Path) -> None:
    torch.manual_seed(4)
    fake, image = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    one_class = torch.full((2, 8, 8), 4, dtype=torch.long)
    _, with_labels = run(
        SemanticConsistency(extractor=PixelFeatures(SEM_LAYERS)),
        tmp_path,
        EvalBatch(fake=fake, image=image, exemplar=image, names=["a", "b"], labels=one_class),
    )
    metric = SemanticConsistency(extractor=PixelFeatures(SEM_LAYERS))
    _, without = run(metric, tmp_path, EvalBatch(fake=fake, image=image, exemplar=image, names=["a", "b"]))
    expected = np.mean([np_cos(fake[i].mean((1, 2)).numpy(), image[i].mean((1, 2)).numpy()) for i in range(2)])
    assert with_labels["semantic"] == pytest.approx(expected, rel=1e-5)
    assert without["semantic"] == pytest.approx(expected, rel=1e-5)
    assert metric.protocol["regions"] == "whole-image"


def test_semantic_requires_labels_when_asked_and_real_weights_from_config(tmp_path: Path) -> None:
    x = torch.rand(1, 3, 8, 8)
    metric = SemanticConsistency(regions="labels", extractor=PixelFeatures(SEM_LAYERS))
    metric.setup(ctx(tmp_path))
    with pytest.raises(MetricSkipped, match="no region labels"):
        metric.check_batch(EvalBatch(fake=x, image=x, exemplar=x, names=["a"]))
    with pytest.raises(UserError, match="meaningless"):
        SemanticConsistency(weights=None)


# -- style relevance --------------------------------------------------------------------------------


def test_style_identical_images_give_one(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 32, 32)
    labels = blocks(2, 32, [0, 1, 2], seed=5)
    batch = EvalBatch(fake=x, image=torch.rand(2, 3, 32, 32), exemplar=x.clone(), names=["a", "b"])
    batch.labels, batch.exemplar_labels = labels, labels.clone()
    _, values = run(StyleRelevance(extractor=tiny_vgg(STYLE_LAYERS)), tmp_path, batch)
    assert set(values) == {"style_color", "style_texture", "style_global_mean", "style_global_var", "style_global"}
    for key, v in values.items():
        assert v == pytest.approx(1.0, abs=1e-5), key


def test_style_class_weighted_value_matches_numpy_loop(tmp_path: Path) -> None:
    torch.manual_seed(6)
    fake, exemplar = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    labels = blocks(2, 8, [0, 1, 2, 3], seed=6)
    ex_labels = blocks(2, 8, [1, 2, 9], seed=7)  # class 0 and 3 absent from the exemplar, 9 from the output
    batch = EvalBatch(fake=fake, image=fake, exemplar=exemplar, names=["a", "b"])
    batch.labels, batch.exemplar_labels = labels, ex_labels
    metric = StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS))
    per_image, values = run(metric, tmp_path, batch)
    f, e = fake.numpy(), exemplar.numpy()
    expected = [np_region_score(f[i], e[i], labels[i].numpy(), ex_labels[i].numpy(), style=True) for i in range(2)]
    np.testing.assert_allclose(per_image["style_color"].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(per_image["style_texture"].numpy(), expected, rtol=1e-5)
    assert values["style_color"] == pytest.approx(np.mean(expected), rel=1e-5)

    # whole-image variant: cosine of channel means and of channel variances (unbiased, as UNITE's script), then
    # their mean
    means = [np_cos(f[i].mean((1, 2)), e[i].mean((1, 2))) for i in range(2)]
    variances = [np_cos(f[i].var((1, 2), ddof=1), e[i].var((1, 2), ddof=1)) for i in range(2)]
    assert values["style_global_mean"] == pytest.approx(np.mean(means), rel=1e-5)
    assert values["style_global_var"] == pytest.approx(np.mean(variances), rel=1e-5)
    assert values["style_global"] == pytest.approx((np.mean(means) + np.mean(variances)) / 2, rel=1e-5)
    assert metric.protocol["regions"] == "labels"


def test_style_single_class_is_whole_image_cosine(tmp_path: Path) -> None:
    torch.manual_seed(8)
    fake, exemplar = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    batch = EvalBatch(fake=fake, image=fake, exemplar=exemplar, names=["a", "b"])
    batch.labels = torch.full((2, 8, 8), 3, dtype=torch.long)
    batch.exemplar_labels = torch.full((2, 8, 8), 3, dtype=torch.long)
    _, values = run(StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS)), tmp_path, batch)
    assert values["style_color"] == pytest.approx(values["style_global_mean"], rel=1e-6)
    no_labels = StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS))
    _, whole = run(no_labels, tmp_path, EvalBatch(fake=fake, image=fake, exemplar=exemplar, names=["a", "b"]))
    assert whole["style_color"] == pytest.approx(values["style_color"], rel=1e-6)
    assert no_labels.protocol["regions"] == "whole-image"


def test_style_image_without_shared_class_scores_zero_and_counts(tmp_path: Path) -> None:
    torch.manual_seed(9)
    fake, exemplar = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    labels = torch.stack([torch.full((8, 8), 2), torch.ones(8, 8)]).long()
    ex_labels = torch.full((2, 8, 8), 1, dtype=torch.long)  # image 0 shares nothing with its exemplar
    batch = EvalBatch(fake=fake, image=fake, exemplar=exemplar, names=["a", "b"])
    batch.labels, batch.exemplar_labels = labels, ex_labels
    metric = StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS))
    per_image, values = run(metric, tmp_path, batch)
    assert float(per_image["style_color"][0]) == 0.0 and float(per_image["style_color"][1]) > 0
    assert values["style_color"] == pytest.approx(float(per_image["style_color"][1]) / 2, rel=1e-6)
    assert metric.protocol["images_without_shared_classes"] == 1


def _two_class_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Labels 8×8: class 0 on the top 6 rows (48 px), class 1 on the bottom 2 rows (16 px)."""
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, 6:] = 1
    return labels, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_label_zero_counts_in_semantic_consistency_but_not_in_style_relevance(tmp_path: Path) -> None:
    labels, (red, green) = _two_class_images()
    fake = torch.zeros(1, 3, 8, 8)
    fake[0, :, :6] = red.view(3, 1, 1)
    fake[0, :, 6:] = green.view(3, 1, 1)
    other = fake.clone()
    other[0, :, :6] = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)  # class 0 in another, orthogonal colour
    batch = EvalBatch(fake=fake, image=other, exemplar=other, names=["a"], labels=labels, exemplar_labels=labels)
    _, semantic = run(SemanticConsistency(extractor=PixelFeatures(SEM_LAYERS)), tmp_path, batch)
    assert semantic["semantic"] == pytest.approx(16 / 64)  # class 0: cos 0 on 48 px, class 1: cos 1 on 16 px
    _, style = run(StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS)), tmp_path, batch)
    assert style["style_color"] == pytest.approx(1.0)  # only class 1 counts


def test_style_classes_are_weighted_by_the_outputs_areas(tmp_path: Path) -> None:
    labels = torch.ones(1, 8, 8, dtype=torch.long)
    labels[:, 6:] = 2  # output: class 1 on 48 px, class 2 on 16 px
    ex_labels = torch.ones(1, 8, 8, dtype=torch.long)
    ex_labels[:, 2:] = 2  # exemplar: class 1 on 16 px, class 2 on 48 px
    fake, exemplar = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    fake[0, 0], exemplar[0, 0] = 1.0, 1.0  # class 1: the same colour in both (cos 1)
    fake[0, :, 6:], exemplar[0, :, 2:] = 0.0, 0.0
    fake[0, 1, 6:], exemplar[0, 2, 2:] = 1.0, 1.0  # class 2: orthogonal colours (cos 0)
    batch = EvalBatch(fake=fake, image=fake, exemplar=exemplar, names=["a"], labels=labels, exemplar_labels=ex_labels)
    _, style = run(StyleRelevance(extractor=PixelFeatures(STYLE_LAYERS)), tmp_path, batch)
    assert style["style_color"] == pytest.approx(48 / 64)  # the exemplar's areas would give 16 / 64
