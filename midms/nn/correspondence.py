"""Cross-domain correspondence: feature normalisation, cosine correlation and soft warping.

Shared by MIDMs (Seo et al., AAAI 2023, cvlab-kaist/MIDMs) and the CoCosNet baseline (Zhang et al.,
CVPR 2020, microsoft/CoCosNet): both match input-side features to exemplar-side features with a cosine
correlation, turn each row into a distribution with a temperature softmax, and warp exemplar values by
it. Shapes: features are B×C×H×W; a correlation is B×(H·W of the input)×(H·W of the exemplar).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: logits further than this below their row's maximum are raised to it before the softmax (see :func:`sharp_softmax`)
SOFTMAX_FLOOR = 80.0


def sharp_softmax(logits: Tensor, dim: int = -1) -> Tensor:
    """``softmax(logits)`` for the sharp distributions of a low-temperature correlation, without the CPU's slow path.

    At temperatures of 0.005 to 0.01 a row's logits span 100 to 200; ``exp`` of the shifted logits below about -87
    underflows, and the CPU's vectorised ``exp`` takes a slow path for every such element (ten times the softmax's
    time at 256 positions). Logits more than :data:`SOFTMAX_FLOOR` below their row's maximum are raised to that
    floor first: such an element's weight becomes e^-80 ≈ 2e-35 of the row's largest instead of 0 (or a denormal),
    which no float32 sum of the row, nor a weighted sum of values with it, can register, and the softmax kernel
    computes every other element as before (the same shift by the same maximum), bit for bit. Its gradient,
    of the same size, is dropped with it.
    """
    top = logits.detach().amax(dim=dim, keepdim=True)
    return F.softmax(torch.maximum(logits, top - SOFTMAX_FLOOR), dim=dim)


def normalize_features(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Centre each position's feature vector over channels, then L2-normalise it (CoCosNet's PONO_C + norm)."""
    x = x - x.mean(dim=1, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + eps)


def correlation(query: Tensor, key: Tensor, normalize: bool = True) -> Tensor:
    """Cosine correlation of every query position with every key position: B×HqWq×HkWk."""
    if normalize:
        query, key = normalize_features(query), normalize_features(key)
    return torch.bmm(query.flatten(2).transpose(1, 2), key.flatten(2))


def soft_warp(corr: Tensor, values: Tensor, temperature: float, out_hw: tuple[int, int] | None = None) -> Tensor:
    """Warp exemplar-aligned ``values`` (B×C×Hk×Wk) by ``softmax(corr / temperature)`` over key positions.

    Returns B×C×Hq×Wq (``out_hw`` gives Hq, Wq; square by default).
    """
    attn = sharp_softmax(corr / temperature)  # B×Nq×Nk, rows sum to one
    return _apply(attn, values, out_hw)


def argmax_warp(corr: Tensor, values: Tensor, out_hw: tuple[int, int] | None = None) -> Tensor:
    """The hard warp: each query position takes the value at its best-matching key position."""
    attn = F.one_hot(corr.argmax(dim=-1), corr.shape[-1]).to(values.dtype)
    return _apply(attn, values, out_hw)


def _apply(attn: Tensor, values: Tensor, out_hw: tuple[int, int] | None) -> Tensor:
    b, c = values.shape[:2]
    if attn.shape[-1] != values.shape[2] * values.shape[3]:
        raise ValueError(f"correlation has {attn.shape[-1]} key positions, values have {values.shape[2:]} pixels")
    nq = attn.shape[1]
    hq, wq = out_hw or (int(nq**0.5), int(nq**0.5))
    if hq * wq != nq:
        raise ValueError(f"cannot lay {nq} query positions out as {hq}×{wq}; pass out_hw")
    warped = torch.bmm(attn, values.flatten(2).transpose(1, 2))  # B×Nq×C
    return warped.transpose(1, 2).reshape(b, c, hq, wq)
