"""MIDMs' contextual loss as the official code computes it, against a plain loop.

cvlab-kaist/MIDMs, models/ContextualLoss.py, ContextualLoss_forward: features centred by the exemplar's
channel mean at each position and L2-normalised; d_ij = 1 - <x_i, y_j>; relative distance d_ij / (min_k d_ik +
1e-3); affinity exp((1 - d_rel) / 0.1) normalised over j; the best affinity of each output position; only the
positions whose best affinity is at least 0.3 count, pooled over the whole batch; the loss is -log of their
mean, and 0 when no position qualifies.
"""

from __future__ import annotations

import math

import pytest
import torch
from contextual_loops import best_affinities

from midms.nn.losses import contextual_loss_midms

H, EPS, MIN_AFFINITY = 0.1, 1e-3, 0.3  # the official h, the d_norm epsilon and wta.ge(0.3)


def official_by_loops(x: torch.Tensor, y: torch.Tensor) -> float:
    kept = [a for row in best_affinities(x, y, H, EPS) for a in row if a >= MIN_AFFINITY]
    return -math.log(sum(kept) / len(kept)) if kept else 0.0


def test_only_positions_with_a_confident_match_count_pooled_over_the_batch():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 6, 4, 4, generator=g, dtype=torch.float64)
    for b, copies in enumerate((8, 4, 2)):  # a cluster of identical exemplar positions: near-ties, low affinity
        y[b].flatten(1)[:, :copies] = y[b, :, :1, :1].flatten(1)
    x = y + 0.05 * torch.randn(3, 6, 4, 4, generator=g, dtype=torch.float64)
    affinities = [a for row in best_affinities(x, y, H, EPS) for a in row]
    assert 0 < sum(a >= MIN_AFFINITY for a in affinities) < len(affinities)  # the mask really selects
    assert contextual_loss_midms(x, y).item() == pytest.approx(official_by_loops(x, y), rel=1e-9)
    # pooled over the batch, not a mean of per-sample losses
    per_sample = sum(official_by_loops(x[i : i + 1], y[i : i + 1]) for i in range(3)) / 3
    assert contextual_loss_midms(x, y).item() != pytest.approx(per_sample, rel=1e-6)


def test_no_confident_position_gives_zero_with_a_gradient_path():
    # four identical exemplar positions: every output position is equally close to all four (affinity 1/4)
    y = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    x = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x.requires_grad_(True)
    assert max(best_affinities(x.detach(), y, H, EPS)[0]) == pytest.approx(0.25) and MIN_AFFINITY > 0.25
    loss = contextual_loss_midms(x, y)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph: a training step with no confident match does not break
    assert x.grad is not None and torch.all(x.grad == 0)
