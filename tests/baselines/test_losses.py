"""The shared losses (midms.nn.losses) against values computed by hand or by plain loops."""

from __future__ import annotations

import math

import pytest
import torch
from contextual_loops import best_affinities

from midms.nn import losses


def test_hinge_losses_by_hand():
    pred = torch.tensor([[-2.0, 0.5], [1.5, 0.0]]).view(1, 1, 2, 2)
    # real: mean(relu(1 - x)) = (3 + 0.5 + 0 + 1) / 4; fake: mean(relu(1 + x)) = (0 + 1.5 + 2.5 + 1) / 4
    assert losses.hinge_d_loss(pred, real=True).item() == pytest.approx(4.5 / 4)
    assert losses.hinge_d_loss(pred, real=False).item() == pytest.approx(5.0 / 4)
    assert losses.hinge_g_loss(pred).item() == pytest.approx(-0.0 / 4 - (-2 + 0.5 + 1.5 + 0) / 4)
    # multi-scale: the mean over scales of each scale's mean; only the last map of a scale is the prediction
    second = torch.full((1, 1, 1, 1), 3.0)
    multi = [[torch.zeros(1, 2, 2, 2), pred], [torch.ones(1, 1, 1, 1), second]]
    assert losses.hinge_d_loss(multi, real=True).item() == pytest.approx((4.5 / 4 + 0.0) / 2)
    assert losses.hinge_g_loss(multi).item() == pytest.approx((0.0 - 3.0) / 2)


def test_gan_feature_matching_by_hand():
    fake = [[torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 9.0)]]
    real = [[torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 1, 1), 4.0), torch.zeros(1, 1, 1, 1)]]
    # layers 0 and 1 (the prediction excluded): |0 - 2| + |1 - 4|; one scale
    assert losses.gan_feature_matching_loss(fake, real).item() == pytest.approx(5.0)
    two = losses.gan_feature_matching_loss(fake * 2, real * 2)
    assert two.item() == pytest.approx(5.0)  # averaged over scales


def test_vgg_feature_matching_weights_layers_and_samples():
    fake = [torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)]
    real = [torch.tensor([1.0, 3.0]).view(2, 1, 1, 1), torch.tensor([2.0, 4.0]).view(2, 1, 1, 1)]
    w = losses.paired_sample_weights(torch.tensor([1.0, 0.0]))  # only the first sample is paired
    assert w.tolist() == pytest.approx([1 / (1 + 1e-5), 0.0])
    value = losses.vgg_feature_matching_loss(fake, real, w, layer_weights=(0.5, 1.0))
    # mean over the batch of |diff| * w_b: layer 0: (1 * w0 + 0) / 2, layer 1: (2 * w0 + 0) / 2
    assert value.item() == pytest.approx(0.5 * 0.5 * w[0].item() + 1.0 * 1.0 * w[0].item())
    assert losses.perceptual_loss(real[0], fake[0]).item() == pytest.approx((1 + 9) / 2)


def contextual_by_loops(x: torch.Tensor, y: torch.Tensor) -> float:
    """CoCosNet's form: per sample -log(mean over output positions of the best affinity), averaged."""
    return sum(-math.log(sum(row) / len(row)) for row in best_affinities(x, y)) / x.shape[0]


def test_contextual_loss_against_the_definition():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64),
        torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64),
    )
    assert losses.contextual_loss(x, y).item() == pytest.approx(contextual_by_loops(x, y), rel=1e-9)
    # identical features: every x_i has its own y_i at relative distance 0, the loss is near its minimum
    same = losses.contextual_loss(y, y).item()
    assert 0 <= same < losses.contextual_loss(x, y).item()


def test_contextual_loss_other_centrings_run():
    x, y = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    assert losses.contextual_loss(x, y, centering="spatial") >= 0
    assert losses.contextual_loss(x, y, centering="none") >= 0
    with pytest.raises(ValueError, match="centering"):
        losses.contextual_loss(x, y, centering="bogus")


def official_fm_on_one_gpu(fake, real, flags, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)) -> float:
    """CoCosNet's ``fm`` term on one GPU of the released run (microsoft/CoCosNet, models/pix2pix_model.py with
    util.weighted_l1_loss): per-sample weights flags / (sum + 1e-5), then the mean over every element."""
    total = 0.0
    w = [f / (sum(flags) + 1e-5) for f in flags]
    for lw, f, r in zip(layer_weights, fake, real, strict=True):
        per_sample = [float((f[b] - r[b]).abs().mean()) * w[b] for b in range(len(flags))]
        total += lw * sum(per_sample) / len(flags)
    return total


def test_the_fm_term_weighs_the_same_on_any_device_layout():
    """The released runs: 8 GPUs × 4, each GPU's term averaged by DDP. One device with the 8 samples, or two
    processes with 4 each, must give that value: the scale batch / 4 (4 = the released per-GPU batch)."""
    from midms.baselines.cocosnet.model import DEFAULT_SETTINGS

    g = torch.Generator().manual_seed(0)
    fake = [torch.randn(8, 2, 3, 3, generator=g, dtype=torch.float64) for _ in range(5)]
    real = [torch.randn(8, 2, 3, 3, generator=g, dtype=torch.float64) for _ in range(5)]
    flags = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]  # three paired samples in each half
    gpus = [slice(0, 4), slice(4, 8)]
    released = sum(official_fm_on_one_gpu([f[s] for f in fake], [r[s] for r in real], flags[s]) for s in gpus) / 2

    def ours(part: slice) -> float:
        paired = torch.tensor(flags[part], dtype=torch.float64)
        weights = losses.paired_sample_weights(paired, reference_batch=4)  # CoCosNet README: --batchSize 32, 8 GPUs
        return losses.vgg_feature_matching_loss([f[part] for f in fake], [r[part] for r in real], weights).item()

    assert DEFAULT_SETTINGS["fm_reference_batch"] == 4  # what the model passes as reference_batch
    one_device = ours(slice(0, 8))
    two_processes = (ours(gpus[0]) + ours(gpus[1])) / 2  # DDP averages the two processes' gradients
    # (the weights are float32, as CoCosNet computes them: agreement to float32 precision)
    assert one_device == pytest.approx(released, rel=1e-5) and two_processes == pytest.approx(released, rel=1e-6)
