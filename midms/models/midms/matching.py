"""The matching step of MIDMs, in one place: correlation, soft warp, the soft flows and the cycle-consistency
confidence mask that decides where a re-match replaces the current latent.

MIDMs (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs: ``models/base/correlation.py``,
``soft_warp`` / ``get_flow`` / ``fbcheck`` in ``util/util.py`` and their use in ``models/midms.py``):

1. **Correlation and warp.** Every input position is correlated with every exemplar position at latent
   resolution (4096 × 4096 per image for 64×64 latents); negative similarities are clamped to 0, a softmax
   over exemplar positions with temperature 0.005 weighs the exemplar's values (its latent, or its labels
   for the matching accuracy). The dense B×N×N correlation would cost 64 MiB per image at 64×64 (and
   autograd keeps it): :func:`soft_warp_chunked` never materialises it, walking over blocks of ``chunk``
   query rows (of one image, or of several small ones; peak memory ``chunk × N``; with gradients on, a
   block of more than a million elements is recomputed in the backward pass).
   :func:`midms.nn.correspondence.soft_warp` is the dense reference. The softmax is
   :func:`~midms.nn.correspondence.sharp_softmax` (the same weights without the CPU's underflow slow path).
   Features passed in are normalised by :func:`matching_features` as the official code normalises them: centred
   and divided by their norm (``models/midms.py``), then divided once more by their norm + 1e-5 inside
   ``Correlation.correlation`` (``models/base/correlation.py``). The second division scales every vector
   by 1 / (1 + 1e-5); at the temperature of 0.005 that moves the warp by up to 1e-4, so it is kept.
2. **Soft flows** (:func:`soft_flows`): the softmax-expected exemplar position of each input position and
   back, as the official ``get_flow``.
3. **Cycle confidence** (:func:`cycle_error`, :func:`confidence_mask`, :func:`blend`): the re-warped latent
   is kept only where the new correspondence is cycle-consistent: the error is thresholded at 0.5, the
   binary map is 2×2 average-pooled, thresholded at 0.5 again (3 or 4 of the 4 positions consistent) and
   up-sampled back (nearest). Two details of the official code, kept: the error is measured in
   ``grid_sample`` units ([-1, 1] spans the latent), so 0.5 is a quarter of the latent width (≈ 16
   positions at 64×64), not half a latent pixel; and ``fbcheck`` samples the *forward* flow at the forward
   target (``mode="official"``: the error at p is ``|f(p) + f(p + f(p))|``); ``mode="forward_backward"``
   samples the backward flow there instead (``|f(p) + b(p + f(p))|``), the textbook check. Both are 0 for
   the identity.

The networks that produce the matched features are in :mod:`midms.models.midms.encoders`; the model
(:meth:`midms.models.midms.model.MIDMs.rematch`) strings the three together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from midms.nn.correspondence import normalize_features, sharp_softmax

#: the official softmax temperature (``soft_warp(..., alpha=0.005)``, ``get_flow(..., temp=0.005)``)
TEMPERATURE = 0.005
#: correlation blocks of more elements than this are recomputed in the backward pass (gradient checkpointing)
CHECKPOINT_ABOVE = 1 << 20
#: added to the norm by the official ``Correlation.correlation`` when it normalises the (already unit) features
CORRELATION_EPS = 1e-5


def matching_features(x: Tensor) -> Tensor:
    """B×C×h×w features -> the vectors the official correlation multiplies: centred over channels, L2-normalised
    (:func:`~midms.nn.correspondence.normalize_features`, whose 1e-8 leaves any norm above 0.2 unchanged in float32
    and only keeps an all-equal vector finite), then divided by their norm + :data:`CORRELATION_EPS`."""
    x = normalize_features(x)
    return x / (x.norm(dim=1, keepdim=True) + CORRELATION_EPS)


def _block(q: Tensor, k: Tensor, v: Tensor, temperature: float) -> Tensor:
    """q: G×n×C query rows, k: G×C×N keys, v: G×N×V values -> G×n×V."""
    corr = (q @ k).clamp(min=0)  # G×n×N cosine similarity, negatives clamped as in the official Correlation
    return sharp_softmax(corr / temperature) @ v


def soft_warp_chunked(
    query: Tensor, key: Tensor, values: Tensor, temperature: float = TEMPERATURE, chunk: int = 1024
) -> Tensor:
    """Warp key-aligned ``values`` (B×V×Hk×Wk) onto the query grid by ``softmax(max(<q, k>, 0) / temperature)``.

    ``query`` B×C×Hq×Wq and ``key`` B×C×Hk×Wk are normalised features. Returns B×V×Hq×Wq. The backward
    warp (the transpose correspondence, softmax over query positions) is ``soft_warp_chunked(key, query, v)``.
    A block holds at most ``chunk`` query rows × all keys: ``chunk`` rows of one image, or, for latents of
    fewer than ``chunk`` positions, whole images batched together (small latents pay one matmul per group,
    not one per image).
    """
    b, _, hq, wq = query.shape
    if values.shape[2:] != key.shape[2:]:
        raise ValueError(f"values {tuple(values.shape)} are not aligned with the key features {tuple(key.shape)}")
    q_all = query.flatten(2).transpose(1, 2).contiguous()  # B×Nq×C (contiguous rows: bmm is 3× faster on them)
    k_all = key.flatten(2)  # B×C×Nk
    v_all = values.flatten(2).transpose(1, 2).to(query.dtype)  # B×Nk×V
    nq = q_all.shape[1]
    group = max(1, chunk // nq)  # images per block
    # a block's correlation is recomputed in the backward pass rather than kept, where keeping it would cost
    # memory (paper-size latents); a small one (the tiny model's 16×16 latents) is kept: recomputing it costs time
    block_elements = group * min(chunk, nq) * k_all.shape[2]
    use_ckpt = block_elements > CHECKPOINT_ABOVE and torch.is_grad_enabled()
    use_ckpt = use_ckpt and any(t.requires_grad for t in (query, key, values))
    out = []
    for i in range(0, b, group):
        rows = []
        for s in range(0, nq, chunk):
            args = (q_all[i : i + group, s : s + chunk], k_all[i : i + group], v_all[i : i + group], temperature)
            rows.append(checkpoint(_block, *args, use_reentrant=False) if use_ckpt else _block(*args))
        out.append(torch.cat(rows, dim=1))
    # B×Nq×V viewed as B×V×Hq×Wq: channels-last strides, the layout of the official soft_warp's output
    # (``matmul(...).permute(0, 2, 1).reshape(...)``), which the official sampler carries into its UNet calls; a
    # convolution rounds differently on another layout, so inference keeps it. Training makes it contiguous: some
    # CPU backward kernels refuse channels-last gradients ("grad_input must be contiguous")
    warped = torch.cat(out).transpose(1, 2).reshape(b, values.shape[1], hq, wq)
    return warped.contiguous() if warped.requires_grad else warped


def coordinate_grid(h: int, w: int, device=None, dtype=torch.float32) -> Tensor:
    """1×2×h×w (x, y) coordinates in [-1, 1] (``grid_sample`` order, corners at ±1)."""
    ys = torch.linspace(-1, 1, h, device=device, dtype=dtype)
    xs = torch.linspace(-1, 1, w, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None]


def soft_flows(
    query: Tensor, key: Tensor, temperature: float = TEMPERATURE, chunk: int = 1024
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Expected correspondences of the correlation, as the official ``get_flow``.

    Returns ``(map_fw, map_bw, flow_fw, flow_bw)``, each B×2×h×w in [-1, 1] units: ``map_fw`` is, for every
    query position, the softmax-expected key position (softmax over keys); ``map_bw`` is, for every key
    position, the expected query position (softmax over queries); flows are maps minus the identity grid.
    """
    b = query.shape[0]
    grid_k = coordinate_grid(*key.shape[2:], device=key.device, dtype=key.dtype).expand(b, -1, -1, -1)
    grid_q = coordinate_grid(*query.shape[2:], device=query.device, dtype=query.dtype).expand(b, -1, -1, -1)
    map_fw = soft_warp_chunked(query, key, grid_k, temperature, chunk)
    map_bw = soft_warp_chunked(key, query, grid_q, temperature, chunk)
    return map_fw, map_bw, map_fw - grid_q, map_bw - grid_k


# -- cycle confidence -------------------------------------------------------------------------

CYCLE_MODES = ("official", "forward_backward")


def cycle_error(map_fw: Tensor, flow_fw: Tensor, flow_bw: Tensor, mode: str = "official") -> Tensor:
    """Cycle error B×h×w from the soft maps/flows of :func:`soft_flows` (all B×2×h×w)."""
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
