"""The cycle-consistency confidence mask of MIDMs' interleaved re-matching.

MIDMs (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs, ``models/midms.py`` with ``fbcheck`` and
``get_flow`` in ``util/util.py``) keeps the re-warped latent only where the new correspondence is
cycle-consistent: the error is thresholded at 0.5, the binary map is 2×2 average-pooled, thresholded at 0.5
again (3 or 4 of the 4 positions consistent) and up-sampled back (nearest).

Two details of the official code, kept and documented:

- the error is measured in ``grid_sample`` units ([-1, 1] spans the latent), so 0.5 is a quarter of the
  latent width (≈ 16 positions at 64×64), not half a latent pixel;
- ``fbcheck`` samples the *forward* flow at the forward target (``mode="official"``): the error at p is
  ``|f(p) + f(p + f(p))|`` with f the forward flow. ``mode="forward_backward"`` samples the backward flow
  there instead (``|f(p) + b(p + f(p))|``), the textbook check. Both are 0 for the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CYCLE_MODES = ("official", "forward_backward")


def cycle_error(map_fw: Tensor, flow_fw: Tensor, flow_bw: Tensor, mode: str = "official") -> Tensor:
    """Cycle error B×h×w from the soft maps/flows of :func:`.warp.soft_flows` (all B×2×h×w)."""
    if mode not in CYCLE_MODES:
        raise ValueError(f"cycle mode must be one of {CYCLE_MODES}, got {mode!r}")
    back = flow_fw if mode == "official" else flow_bw
    grid = map_fw.permute(0, 2, 3, 1)  # B×h×w×2 sampling positions
    sampled = F.grid_sample(back, grid, mode="bilinear", align_corners=True)  # B×2×h×w
    return (sampled + flow_fw).pow(2).sum(dim=1).sqrt()


def confidence_mask(error: Tensor, threshold: float = 0.5, pool: int = 2) -> Tensor:
    """Binary B×1×h×w mask: consistent (error < threshold), pooled ``pool``×``pool``, majority > 0.5, up-sampled."""
    consistent = (error < threshold).float()[:, None]
    pooled = F.avg_pool2d(consistent, pool, ceil_mode=True)
    return (F.interpolate(pooled, size=error.shape[-2:], mode="nearest") > 0.5).float()


def blend(new: Tensor, old: Tensor, mask: Tensor | None) -> Tensor:
    """Confident positions take ``new``; ``mask=None`` (no confidence masking) takes ``new`` everywhere.

    ``torch.where`` on the binary mask (not ``lerp``) so latents of different dtypes under autocast mix."""
    return new if mask is None else torch.where(mask > 0.5, new, old)
