"""A CompVis LDM on diffusers modules, computed in the original's order of operations.

A pretrained LDM (Rombach et al., CVPR 2022; https://github.com/CompVis/latent-diffusion, as vendored by
cvlab-kaist/MIDMs in ``models/diffusionmodules/`` and ``models/feature_backbones/``) runs here as diffusers'
:class:`~diffusers.UNet2DModel` and :class:`~diffusers.VQModel` / :class:`~diffusers.AutoencoderKL`: the same
functions, some computed in another order. Each such difference is about 1e-6; MIDMs re-matches its latents with a
softmax at temperature 0.005, which makes such differences visible, so a loaded LDM computes as the original
(:func:`use_compvis_ops`):

- UNet attention (``openaimodel.AttentionBlock`` with ``QKVAttentionLegacy``): GroupNorm, one 1×1 ``conv1d`` giving
  q, k and v per head ``[q_h, k_h, v_h]``, q and k each scaled by ``d^-1/4``, ``einsum``, a float32 softmax,
  ``einsum``, the ``proj_out`` ``conv1d``, ``x + h`` (diffusers: three linear layers and scaled-dot-product
  attention);
- autoencoder attention (``model.AttnBlock``): 1×1 convolutions, ``bmm`` of q and k, scaled by ``c^-1/2``, softmax,
  ``bmm`` with v, ``proj_out``, ``x + h``;
- the autoencoder's non-linearity ``x * sigmoid(x)`` (``model.nonlinearity``; diffusers' fused SiLU rounds
  differently), and its VQ look-up: the nearest code by ``|z|^2 + |e|^2 - 2 z.e`` (taming's ``VectorQuantizer2``;
  diffusers measures ``cdist``, which can pick the other of two nearly equidistant codes).

The UNet, with these, equals ``openaimodel.UNetModel`` to the last bit on the same weights and input
(``benchmarks/official_midms.py`` measures the whole translation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn


def legacy_qkv(attn: Attention) -> tuple[Tensor, Tensor]:
    """The ``qkv`` conv1d weight (3C×C×1) and bias of openaimodel, per head ``[q_h, k_h, v_h]``."""
    heads, c = attn.heads, attn.to_q.weight.shape[0]
    weights = torch.stack([m.weight.reshape(heads, c // heads, -1) for m in (attn.to_q, attn.to_k, attn.to_v)], 1)
    biases = torch.stack([m.bias.reshape(heads, c // heads) for m in (attn.to_q, attn.to_k, attn.to_v)], 1)
    return weights.reshape(3 * c, -1, 1), biases.reshape(3 * c)


class UNetAttnProcessor:
    """``openaimodel.AttentionBlock._forward`` with ``QKVAttentionLegacy``, on a diffusers attention module."""

    def __call__(
        self, attn: Attention, hidden_states: Tensor, encoder_hidden_states=None, attention_mask=None, temb=None
    ) -> Tensor:
        b, c, h, w = hidden_states.shape
        x = hidden_states.reshape(b, c, h * w)
        weight, bias = legacy_qkv(attn)
        qkv = F.conv1d(attn.group_norm(x), weight, bias)  # B×3C×T
        ch = c // attn.heads
        q, k, v = qkv.reshape(b * attn.heads, 3 * ch, h * w).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weights = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weights = torch.softmax(weights.float(), dim=-1).type(weights.dtype)
        a = torch.einsum("bts,bcs->bct", weights, v).reshape(b, c, h * w)
        out = attn.to_out[0]
        return (x + F.conv1d(a, out.weight[..., None], out.bias)).reshape(b, c, h, w)


def _conv1x1(x: Tensor, linear: nn.Linear) -> Tensor:
    return F.conv2d(x, linear.weight[..., None, None], linear.bias)


class AutoencoderAttnProcessor:
    """``model.AttnBlock.forward`` (the first stage's single-head attention), on a diffusers attention module."""

    def __call__(
        self, attn: Attention, hidden_states: Tensor, encoder_hidden_states=None, attention_mask=None, temb=None
    ) -> Tensor:
        x = hidden_states
        normed = attn.group_norm(x)
        q, k, v = (_conv1x1(normed, m) for m in (attn.to_q, attn.to_k, attn.to_v))
        b, c, h, w = q.shape
        weights = torch.bmm(q.reshape(b, c, h * w).permute(0, 2, 1), k.reshape(b, c, h * w))  # B×T×T
        weights = F.softmax(weights * (int(c) ** (-0.5)), dim=2)
        out = torch.bmm(v.reshape(b, c, h * w), weights.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + _conv1x1(out, attn.to_out[0])


class Swish(nn.Module):
    """``x * sigmoid(x)``, as the CompVis autoencoder's ``nonlinearity`` writes it."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


def taming_quantize(z: Tensor, codebook: Tensor) -> Tensor:
    """B×d×h×w latents -> their nearest codes by ``|z|^2 + |e|^2 - 2 z.e`` (taming's ``VectorQuantizer2``), with the
    straight-through ``z + (e - z).detach()`` of the original, computed channels-last and returned contiguous as
    there (the decoder's first convolution rounds differently on another memory layout)."""
    z = z.permute(0, 2, 3, 1).contiguous()  # B×h×w×d
    flat = z.view(-1, z.shape[-1])
    d = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * torch.einsum("bd,dn->bn", flat, codebook.t())
    e = codebook[d.argmin(dim=1)].view(z.shape)
    return (z + (e - z).detach()).permute(0, 3, 1, 2).contiguous()


def _check_attention(module: Attention) -> None:
    if module.group_norm is None or not module.residual_connection or module.rescale_output_factor != 1:
        raise ValueError("CompVis attention needs a group-normed residual attention module (AttentionBlock/AttnBlock)")


def use_compvis_ops(unet: nn.Module, vae: nn.Module) -> None:
    """The UNet's and the autoencoder's attention and the autoencoder's non-linearity computed as the original."""
    for net, processor in ((unet, UNetAttnProcessor), (vae, AutoencoderAttnProcessor)):
        for module in net.modules():
            if isinstance(module, Attention):
                _check_attention(module)
                module.set_processor(processor())
    for parent in list(vae.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, name, Swish())
