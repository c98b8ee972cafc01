"""Training losses shared by the GAN baselines and MIDMs: hinge GAN, feature matching, perceptual, contextual, KL.

They follow the loss terms of CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for
Exemplar-based Image Translation", CVPR 2020, https://github.com/microsoft/CoCosNet: ``models/pix2pix_model.py``,
``models/networks/loss.py``, ``models/networks/ContextualLoss.py``), which MIDMs (Seo et al., AAAI 2023)
reuses. Written from the definitions, not copied. Every function returns an unweighted scalar; the caller
applies the loss weights (``lambda_feat``, ``lambda_vgg``, ...).

Shapes: images and feature maps are B×C×H×W; a multi-scale discriminator output is a list (one entry
per scale) of lists of feature maps whose last entry is the patch prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: per-layer weights of the VGG feature-matching loss for relu1_2 .. relu5_2 (CoCosNet, after pix2pixHD)
VGG_LAYER_WEIGHTS: tuple[float, ...] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def _scales(pred: Tensor | Sequence) -> list[Tensor]:
    """The patch predictions of a (multi-scale) discriminator: the last map of each scale."""
    if isinstance(pred, Tensor):
        return [pred]
    return [p[-1] if isinstance(p, list | tuple) else p for p in pred]


def hinge_d_loss(pred: Tensor | Sequence, real: bool) -> Tensor:
    """Discriminator hinge loss, averaged over scales: ``mean(relu(1 - D(x)))`` for reals, ``mean(relu(1 + D(x)))``
    for fakes (Lim & Ye 2017; SPADE and CoCosNet's ``GANLoss('hinge')``)."""
    sign = -1.0 if real else 1.0
    losses = [F.relu(1.0 + sign * p).mean() for p in _scales(pred)]
    return torch.stack(losses).mean()


def hinge_g_loss(pred: Tensor | Sequence) -> Tensor:
    """Generator hinge loss, averaged over scales: ``-mean(D(G(z)))``."""
    return torch.stack([-p.mean() for p in _scales(pred)]).mean()


def gan_feature_matching_loss(fake: Sequence[Sequence[Tensor]], real: Sequence[Sequence[Tensor]]) -> Tensor:
    """pix2pixHD's discriminator feature matching: L1 between the intermediate maps of fake and real inputs,
    summed over layers (the final prediction excluded) and averaged over scales. Real maps are detached."""
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real, strict=True):
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake)


def weighted_l1(x: Tensor, y: Tensor, sample_weights: Tensor) -> Tensor:
    """``mean(|x - y| * w_b)`` over all elements, ``w`` a per-sample weight of shape B (CoCosNet's paired-only L1)."""
    return ((x - y).abs() * sample_weights.view(-1, *([1] * (x.dim() - 1)))).mean()


def vgg_feature_matching_loss(
    fake: Sequence[Tensor],
    real: Sequence[Tensor],
    sample_weights: Tensor | None = None,
    layer_weights: Sequence[float] = VGG_LAYER_WEIGHTS,
) -> Tensor:
    """Weighted L1 between VGG features of the output and of the ground truth (CoCosNet's ``fm`` term).

    ``sample_weights`` (B) restricts the loss to samples with a ground truth; CoCosNet normalises the
    paired flags to sum to one (see :func:`paired_sample_weights`). ``None``: every sample counts fully.
    """
    if sample_weights is None:
        sample_weights = fake[0].new_ones(fake[0].shape[0])
    total = fake[0].new_zeros(())
    for w, f, r in zip(layer_weights, fake, real, strict=True):
        total = total + w * weighted_l1(f, r.detach(), sample_weights)
    return total


def paired_sample_weights(paired: Tensor, eps: float = 1e-5, reference_batch: int | None = None) -> Tensor:
    """CoCosNet's per-sample weights of the paired-only losses: the 0/1 flags divided by their sum (+eps).

    The released code computes them per GPU, so the term is 1/batch of the paired mean on each GPU. With
    ``reference_batch`` (the per-GPU batch of the run to match) the weights are scaled by
    ``batch / reference_batch``: the same effective weight whatever the number of devices and the batch."""
    paired = paired.float()
    weights = paired / (paired.sum() + eps)
    return weights if reference_batch is None else weights * (paired.numel() / reference_batch)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the batch and the code: ``-0.5 · Σ(1 + logvar - mu² - e^logvar)``
    (SPADE's ``KLDLoss``: a sum, not a mean, so its weight ``lambda_kld`` depends on the batch and ``z_dim``)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def perceptual_loss(fake: Tensor, real: Tensor) -> Tensor:
    """Mean squared error between one layer's VGG features (CoCosNet's ``perc`` term, at relu4_2 or relu5_2)."""
    return F.mse_loss(fake, real.detach())


def _best_affinity(x: Tensor, y: Tensor, h: float, eps: float, centering: str) -> Tensor:
    """B×Nx: for each output position, its largest normalised affinity ``max_j A_ij`` (see :func:`contextual_loss`)."""
    b, c = x.shape[:2]
    if centering == "channel":
        mu = y.mean(dim=1, keepdim=True)
    elif centering == "spatial":
        mu = y.flatten(2).mean(dim=-1)[..., None, None]
    elif centering == "none":
        mu = torch.zeros_like(y[:, :1])
    else:
        raise ValueError(f"centering must be channel, spatial or none, got {centering!r}")
    x, y = x - mu, y - mu
    x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
    y = y / (y.norm(dim=1, keepdim=True) + 1e-10)
    d = 1.0 - torch.bmm(x.reshape(b, c, -1).transpose(1, 2), y.reshape(b, c, -1))  # B×Nx×Ny
    d_rel = d / (d.min(dim=-1, keepdim=True).values + eps)
    affinity = F.softmax((1.0 - d_rel) / h, dim=-1)  # = exp(.)/sum exp(.), stable
    return affinity.max(dim=-1).values


def contextual_loss(x: Tensor, y: Tensor, h: float = 0.1, eps: float = 1e-3, centering: str = "channel") -> Tensor:
    """The contextual loss of Mechrez et al. ("The Contextual Loss for Image Transformation with Non-Aligned
    Data", ECCV 2018) in the form CoCosNet trains with (``ContextualLoss_forward``). Returns the batch mean.

    For features ``x_i`` (output) and ``y_j`` (exemplar), both B×C×H×W:

    - centre: ``centering="channel"`` (CoCosNet with ``--PONO``) subtracts from both ``x`` and ``y`` the
      channel mean of ``y`` at the same position; ``"spatial"`` subtracts ``y``'s per-channel spatial mean
      (the paper); ``"none"`` skips it. Then L2-normalise each position's vector over channels;
    - cosine distance ``d_ij = 1 - <x_i, y_j>``; relative distance ``d~_ij = d_ij / (min_k d_ik + eps)``;
    - affinity ``w_ij = exp((1 - d~_ij) / h)``, normalised ``A_ij = w_ij / sum_k w_ik``;
    - ``CX = mean_i max_j A_ij`` and the loss ``-log(CX)``.

    CoCosNet takes the maximum over the exemplar positions j for each output position i (and normalises
    over j), where the paper writes ``1/N sum_j max_i``; both are kept as CoCosNet has them.
    """
    cx = _best_affinity(x, y, h, eps, centering).mean(dim=1)  # B
    return -torch.log(cx).mean()


def contextual_pyramid(fake: Sequence[Tensor], exemplar: Sequence[Tensor]) -> Tensor:
    """CoCosNet's ``get_ctx_loss`` (also MATEBIT's and CoCosNet v2's): :func:`contextual_loss` at relu5_2 ×8, relu4_2
    ×4 and 2×-average-pooled relu3_2 ×2, from features at relu1_2..relu5_2; the exemplar's are detached."""
    total = 8 * contextual_loss(fake[4], exemplar[4].detach()) + 4 * contextual_loss(fake[3], exemplar[3].detach())
    return total + 2 * contextual_loss(F.avg_pool2d(fake[2], 2), F.avg_pool2d(exemplar[2].detach(), 2))


def contextual_loss_midms(x: Tensor, y: Tensor, h: float = 0.1, eps: float = 1e-3, min_affinity: float = 0.3) -> Tensor:
    """The contextual loss in the form MIDMs trains with (cvlab-kaist/MIDMs, ``models/ContextualLoss.py``,
    ``ContextualLoss_forward``): the affinities of :func:`contextual_loss` (channel centring), but only the
    output positions whose best affinity is at least ``min_affinity`` count, pooled over the whole batch:
    ``-log(mean of those best affinities)``, and 0 (still in the graph) when no position qualifies.
    """
    best = _best_affinity(x, y, h, eps, "channel")
    keep = best >= min_affinity
    if not bool(keep.any()):
        return best.sum() * 0.0
    return -torch.log(best[keep].mean())
