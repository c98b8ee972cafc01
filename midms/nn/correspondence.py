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
    attn = F.softmax(corr / temperature, dim=-1)  # B×Nq×Nk, rows sum to one
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
