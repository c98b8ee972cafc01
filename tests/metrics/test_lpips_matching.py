"""LPIPS (with a random backbone injected through the real loading path), LPIPS diversity, matching accuracy."""

from __future__ import annotations

import warnings
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from midms.errors import MetricSkipped
from midms.metrics.base import EvalBatch, EvalContext
from midms.metrics.lpips_metric import LPIPS, LPIPSDiversity, linear_weights_path
from midms.metrics.matching import MatchingAccuracy, warped_label_map


@pytest.fixture(scope="module")
def reference() -> lpips.LPIPS:
    """The lpips package's own network: random AlexNet backbone, the package's published linear layers."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()


def make_ctx(tmp_path: Path) -> EvalContext:
    return EvalContext(
        samples_dir=tmp_path / "samples", reference_dir=tmp_path, cache_dir=tmp_path, dataset_key="k", image_size=64
    )


def quantised(b: int, seed: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g).float() / 255


# -- LPIPS ------------------------------------------------------------------------------------------


def test_lpips_of_identical_images_is_zero(tmp_path: Path, reference: lpips.LPIPS) -> None:
    x = quantised(3, 0)
    metric = LPIPS(model=reference)
    metric.setup(make_ctx(tmp_path))
    metric.check_batch(EvalBatch(fake=x, image=x, exemplar=x, names=list("abc"), target=x.clone()))
    per_image = metric.update(EvalBatch(fake=x, image=x, exemplar=x, names=list("abc"), target=x.clone()))
    assert torch.all(per_image["lpips"] == 0)
    assert metric.compute(make_ctx(tmp_path)) == {"lpips": 0.0}
    assert LPIPS.higher_is_better is False and LPIPSDiversity.higher_is_better is True


def test_lpips_loads_cached_backbone_and_equals_the_package(
    tmp_path: Path, hub_dir: Path, reference: lpips.LPIPS, trust_weights
) -> None:
    # the backbone in torchvision's layout (features.<i>.*) where torchvision would cache it
    trunk = {f"features.{k.split('.', 1)[1]}": v for k, v in reference.net.state_dict().items()}
    trunk["classifier.1.weight"] = torch.zeros(4, 4)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(trunk, hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth")
    trust_weights(hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth")

    fake, target = quantised(4, 1), quantised(4, 2)
    metric = LPIPS(net="alex", batch_size=3)  # two chunks
    metric.setup(make_ctx(tmp_path))
    assert "alexnet-owt-7be5be79.pth" in metric.weights_id
    per_image = metric.update(EvalBatch(fake=fake, image=fake, exemplar=fake, names=list("abcd"), target=target))
    with torch.no_grad():
        expected = reference(2 * fake - 1, 2 * target - 1).flatten()
    torch.testing.assert_close(per_image["lpips"], expected, rtol=1e-5, atol=1e-6)
    assert metric.compute(make_ctx(tmp_path))["lpips"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert torch.all(expected > 0)


def test_lpips_skips_without_backbone_or_target(tmp_path: Path, hub_dir: Path, reference: lpips.LPIPS) -> None:
    assert linear_weights_path("alex").is_file()  # shipped inside the package
    with pytest.raises(MetricSkipped) as err:
        LPIPS(net="alex").setup(make_ctx(tmp_path))
    message = str(err.value)
    assert str(hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth") in message and "Fix:" in message
    with pytest.raises(MetricSkipped, match="vgg16-397923af.pth"):
        LPIPSDiversity(net="vgg").setup(make_ctx(tmp_path))

    x = quantised(1, 3)
    metric = LPIPS(model=reference)
    metric.setup(make_ctx(tmp_path))
    with pytest.raises(MetricSkipped, match="dataset has no ground-truth target"):
        metric.check_batch(EvalBatch(fake=x, image=x, exemplar=x, names=["a"]))


# -- LPIPS diversity --------------------------------------------------------------------------------


def save(ctx: EvalContext, names: list[str], images: torch.Tensor) -> None:
    ctx.samples_dir.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        array = (image * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array).save(ctx.samples_dir / f"{name}.png")


def test_diversity_is_mean_over_inputs_of_pairwise_lpips(tmp_path: Path, reference: lpips.LPIPS) -> None:
    ctx = make_ctx(tmp_path)
    names = ["a", "a__e2", "a__e3", "b", "b__e2", "c"]  # c has a single exemplar: not counted
    images = quantised(6, 4)
    save(ctx, names, images)
    metric = LPIPSDiversity(model=reference, batch_size=2)
    metric.setup(ctx)
    for part in (slice(0, 4), slice(4, 6)):  # a group spans two batches
        x = images[part]
        assert metric.update(EvalBatch(fake=x, image=x, exemplar=x, names=names[part])) is None
    values = metric.compute(ctx)

    def d(i: int, j: int) -> float:
        with torch.no_grad():
            return float(reference(2 * images[i : i + 1] - 1, 2 * images[j : j + 1] - 1))

    expected = (np.mean([d(0, 1), d(0, 2), d(1, 2)]) + d(3, 4)) / 2
    assert values == {"lpips_diversity": pytest.approx(expected, rel=1e-5)}
    assert metric.protocol["inputs"] == 2 and metric.protocol["pairs"] == 4
    assert metric.protocol["inputs_with_one_output"] == 1


def test_diversity_uses_input_ids_and_needs_several_exemplars(tmp_path: Path, reference: lpips.LPIPS) -> None:
    ctx = make_ctx(tmp_path)
    images = quantised(2, 5)
    save(ctx, ["p", "q"], images)
    single = LPIPSDiversity(model=reference)
    single.setup(ctx)
    single.update(EvalBatch(fake=images, image=images, exemplar=images, names=["p", "q"]))
    with pytest.raises(MetricSkipped, match="several exemplars per input"):
        single.compute(ctx)

    grouped = LPIPSDiversity(model=reference)  # the evaluator may pass the input ids explicitly
    grouped.setup(ctx)
    grouped.update(EvalBatch(fake=images, image=images, exemplar=images, names=["p", "q"], input_ids=["x", "x"]))
    with torch.no_grad():
        expected = float(reference(2 * images[:1] - 1, 2 * images[1:] - 1))
    assert grouped.compute(ctx)["lpips_diversity"] == pytest.approx(expected, rel=1e-5)


# -- matching accuracy ------------------------------------------------------------------------------


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.one_hot(labels, k).permute(0, 3, 1, 2).float()


def matching_batch(labels: torch.Tensor, warped: torch.Tensor | None) -> EvalBatch:
    """``warped``: the exemplar's one-hot labels as a model warps them (B×K×h×w), kept as the evaluator keeps them."""
    x = torch.zeros(labels.shape[0], 3, *labels.shape[-2:])
    hard = None if warped is None else warped_label_map(warped, tuple(labels.shape[-2:]))
    return EvalBatch(
        fake=x, image=x, exemplar=x, names=[str(i) for i in range(len(x))], labels=labels,
        exemplar_labels=labels, warped_labels=hard,
    )  # fmt: skip


def test_matching_identity_warp_is_one(tmp_path: Path) -> None:
    labels = torch.randint(0, 5, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    metric = MatchingAccuracy()
    metric.setup(make_ctx(tmp_path))
    batch = matching_batch(labels, one_hot(labels, 5))
    metric.check_batch(batch)
    assert torch.all(metric.update(batch)["matching_accuracy"] == 1)
    assert metric.compute(make_ctx(tmp_path)) == {"matching_accuracy": 1.0}
    assert MatchingAccuracy.needs_warp and MatchingAccuracy.higher_is_better


def test_matching_half_wrong_and_low_resolution_warp(tmp_path: Path) -> None:
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).expand(2, 4, 4).clone()
    wrong = labels.clone()
    wrong[0, :, :2] = (wrong[0, :, :2] + 1) % 4  # image 0: left half wrong -> 0.5
    wrong[1, 0, :] = (wrong[1, 0, :] + 1) % 4  # image 1: one row of four wrong
    labels[1, 3, 3] = -1  # an unlabelled pixel does not count: 11 right of 15
    metric = MatchingAccuracy()
    metric.setup(make_ctx(tmp_path))
    per_image = metric.update(matching_batch(labels, one_hot(wrong, 4)))["matching_accuracy"]
    np.testing.assert_allclose(per_image.numpy(), [0.5, 11 / 15])
    assert metric.compute(make_ctx(tmp_path))["matching_accuracy"] == pytest.approx((0.5 + 11 / 15) / 2)

    # a 2×2 warp of 2×2-block labels, resized bilinearly to the 4×4 labels, is exact
    coarse = torch.tensor([[[0, 1], [2, 3]]])
    low = MatchingAccuracy()
    low.setup(make_ctx(tmp_path))
    fine = coarse.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert low.update(matching_batch(fine, one_hot(coarse, 4)))["matching_accuracy"].item() == 1.0


def test_matching_skips_without_warp_or_labels() -> None:
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(MetricSkipped, match="does not expose a warp"):
        MatchingAccuracy().check_batch(matching_batch(labels, None))
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(MetricSkipped, match="no region labels"):
        MatchingAccuracy().check_batch(EvalBatch(fake=x, image=x, exemplar=x, names=["a"]))
