"""The shared losses (midms.nn.losses) against values computed by hand or by plain loops."""

from __future__ import annotations

import math

import pytest
import torch

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


def contextual_by_loops(x: torch.Tensor, y: torch.Tensor, h: float = 0.1, eps: float = 1e-3) -> float:
    """Mechrez et al. (ECCV 2018) as CoCosNet applies it (channel centring by y, max over exemplar positions)."""
    total = 0.0
    for b in range(x.shape[0]):
        xs = [x[b, :, i, j] for i in range(x.shape[2]) for j in range(x.shape[3])]
        ys = [y[b, :, i, j] for i in range(y.shape[2]) for j in range(y.shape[3])]
        mus = [v.mean() for v in ys]
        xs = [(v - mus[k]) / (v - mus[k]).norm() for k, v in enumerate(xs)]
        ys = [(v - mus[k]) / (v - mus[k]).norm() for k, v in enumerate(ys)]
        cx = 0.0
        for xi in xs:
            d = [1.0 - float(xi @ yj) for yj in ys]
            d_rel = [dj / (min(d) + eps) for dj in d]
            w = [math.exp((1.0 - dr) / h) for dr in d_rel]
            cx += max(wj / sum(w) for wj in w)
        total += -math.log(cx / len(xs))
    return total / x.shape[0]


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
