"""Correlation and warping shared by MIDMs and CoCosNet, against plain loops and exact permutations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from midms.nn.correspondence import argmax_warp, correlation, normalize_features, soft_warp


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
