"""Blocks only CoCosNet uses: self-attention and the initialisation (the shared ones are in ``midms.nn.blocks``).

CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation",
CVPR 2020, https://github.com/microsoft/CoCosNet) builds on SPADE (Park et al., CVPR 2019). The blocks
here follow what ``models/networks/normalization.py`` and ``architecture.py`` of the released code compute
(reflection padding, 3×3 kernels, a spectrally normalised residual path, PONO as the parameter-free norm
with ``--PONO``), written from scratch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def maybe_sn(module: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(module) if use else module


class SelfAttention(nn.Module):
    """Non-local self-attention of SAGAN/BigGAN (CoCosNet's ``--use_attention``): keys and values max-pooled 2×,
    a learned gain ``gamma`` starting at 0, so the block is the identity at initialisation."""

    def __init__(self, channels: int, spectral: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.theta = maybe_sn(nn.Conv2d(channels, channels // 8, 1, bias=False), spectral)
        self.phi = maybe_sn(nn.Conv2d(channels, channels // 8, 1, bias=False), spectral)
        self.g = maybe_sn(nn.Conv2d(channels, channels // 2, 1, bias=False), spectral)
        self.o = maybe_sn(nn.Conv2d(channels // 2, channels, 1, bias=False), spectral)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        query = self.theta(x).flatten(2)  # B×C/8×HW
        key = F.max_pool2d(self.phi(x), 2).flatten(2)  # B×C/8×HW/4
        value = F.max_pool2d(self.g(x), 2).flatten(2)  # B×C/2×HW/4
        attn = F.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # B×HW×HW/4
        out = torch.bmm(value, attn.transpose(1, 2)).view(b, self.channels // 2, h, w)
        return x + self.gamma * self.o(out)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """SPADE/CoCosNet initialisation (``--init_type xavier --init_variance 0.02``): Xavier-normal weights with
    gain 0.02 and zero biases for plain convolutions and linear layers. As in the released code, spectrally
    normalised layers keep PyTorch's default initialisation (their ``weight`` is not a parameter there either).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear) and not parametrize.is_parametrized(m, "weight"):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
