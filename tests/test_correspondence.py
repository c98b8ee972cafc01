"""Correlation and warping shared by MIDMs and CoCosNet, against plain loops and exact permutations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from midms.nn.correspondence import argmax_warp, correlation, normalize_features, sharp_softmax, soft_warp


def test_correlation_is_cosine_of_centred_features_against_a_loop():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 5, 3, 3, generator=g), torch.randn(2, 5, 2, 2, generator=g)
    corr = correlation(q, k)
    assert corr.shape == (2, 9, 4)
    for b in range(2):
        for i in range(9):
            for j in range(4):
                a, c = q[b, :, i // 3, i % 3], k[b, :, j // 2, j % 2]
                expected = F.cosine_similarity(a - a.mean(), c - c.mean(), dim=0)
                assert torch.isclose(corr[b, i, j], expected, atol=1e-5)
    n = normalize_features(q)
    assert torch.allclose(n.norm(dim=1), torch.ones(2, 3, 3), atol=1e-5)


def test_one_hot_correlation_warps_by_an_exact_permutation():
    values = torch.randn(1, 4, 3, 3)
    perm = torch.randperm(9)
    corr = F.one_hot(perm, 9).float()[None]  # query i matches key perm[i]
    for warped in (soft_warp(corr, values, temperature=1e-4), argmax_warp(corr, values)):
        expected = values.flatten(2)[:, :, perm].reshape(1, 4, 3, 3)
        assert torch.equal(warped, expected)


def test_soft_warp_tends_to_the_argmax_warp_as_temperature_falls():
    corr = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    corr = corr + 0.1 * F.one_hot(corr.argmax(-1), 16)  # a clear winner per row (no near-ties)
    values = torch.randn(2, 3, 4, 4)
    hard = argmax_warp(corr, values)
    errors = [(soft_warp(corr, values, t) - hard).abs().max().item() for t in (1.0, 0.1, 0.01, 0.001)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    # a high temperature averages: every output is the mean of the values
    flat = soft_warp(torch.zeros(2, 16, 16), values, 1.0)
    assert torch.allclose(flat, values.mean(dim=(2, 3), keepdim=True).expand_as(flat), atol=1e-6)


def _sharp_logits(temperature: float, seed: int = 0) -> torch.Tensor:
    """Rows of a clamped cosine correlation over a temperature: logits spanning 0 to 1 / temperature."""
    corr = torch.rand(3, 64, 256, generator=torch.Generator().manual_seed(seed))
    return corr / temperature


def test_sharp_softmax_is_softmax_to_the_bit_wherever_softmax_is_representable():
    """MIDMs' temperature 0.005 and CoCosNet's 0.01: every weight within e^-80 of its row's largest is the
    plain softmax's to the last bit; the rest are at most e^-80 (float32 softmax gives 0 or a denormal there),
    and a warp with the weights is the plain warp's to the last bit."""
    values = torch.randn(3, 256, 5, generator=torch.Generator().manual_seed(1))
    for temperature in (0.005, 0.01):
        logits = _sharp_logits(temperature)
        plain, sharp = F.softmax(logits, dim=-1), sharp_softmax(logits)
        kept = logits - logits.amax(-1, keepdim=True) > -80
        assert 0.2 < kept.float().mean() < 0.9  # both kinds of entry are exercised
        assert torch.equal(sharp[kept], plain[kept])
        assert (sharp[~kept] <= math.exp(-80) * 1.001).all() and (plain[~kept] <= math.exp(-80)).all()
        assert torch.equal(sharp @ values, plain @ values)


def test_sharp_softmax_gradient_is_softmax_gradient():
    logits = _sharp_logits(0.005, seed=2).requires_grad_()
    weights = torch.randn(3, 64, 256, generator=torch.Generator().manual_seed(3))
    (F.softmax(logits, dim=-1) * weights).sum().backward()
    plain, logits.grad = logits.grad.clone(), None
    (sharp_softmax(logits) * weights).sum().backward()
    assert torch.allclose(logits.grad, plain, rtol=1e-6, atol=1e-30)


def test_sharp_softmax_of_moderate_logits_is_softmax():
    logits = torch.randn(4, 7, 9, generator=torch.Generator().manual_seed(4)) * 5
    for dim in (-1, 1):
        assert torch.equal(sharp_softmax(logits, dim=dim), F.softmax(logits, dim=dim))
