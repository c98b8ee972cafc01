"""The contextual loss's affinities by plain loops (Mechrez et al., ECCV 2018, as CoCosNet and MIDMs apply it:
features centred by the exemplar's channel mean at each position, cosine distance, relative distance,
exponential affinity normalised over the exemplar positions)."""

from __future__ import annotations

import math

import torch


def best_affinities(x: torch.Tensor, y: torch.Tensor, h: float = 0.1, eps: float = 1e-3) -> list[list[float]]:
    """For each sample, the best affinity ``max_j A_ij`` of each output position i."""
    out = []
    for b in range(x.shape[0]):
        xs = [x[b, :, i, j] for i in range(x.shape[2]) for j in range(x.shape[3])]
        ys = [y[b, :, i, j] for i in range(y.shape[2]) for j in range(y.shape[3])]
        mus = [v.mean() for v in ys]
        xs = [(v - mus[k]) / (v - mus[k]).norm() for k, v in enumerate(xs)]
        ys = [(v - mus[k]) / (v - mus[k]).norm() for k, v in enumerate(ys)]
        row = []
        for xi in xs:
            d = [1.0 - float(xi @ yj) for yj in ys]
            w = [math.exp((1.0 - dj / (min(d) + eps)) / h) for dj in d]
            row.append(max(wj / sum(w) for wj in w))
        out.append(row)
    return out
