"""Building blocks of CoCosNet: positional normalisation, SPADE, the SPADE residual block, self-attention.

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


def positional_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """PONO (Li et al., NeurIPS 2019): normalise each position over channels (unbiased variance, as CoCosNet)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) / (x.var(dim=1, keepdim=True) + eps).sqrt()


def maybe_sn(module: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(module) if use else module


def sn_conv_instance(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """``spectralinstance``: a spectrally normalised convolution without bias, then a parameter-free InstanceNorm."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
    return nn.Sequential(spectral_norm(conv), nn.InstanceNorm2d(out_ch, affine=False))


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(m)) + beta(m)``, ``m`` resized to ``x`` (nearest).

    Args:
        channels: channels of ``x``.
        cond_channels: channels of the conditioning map ``m``.
        hidden: width of the shared embedding (128 in SPADE and CoCosNet).
        pono: positional normalisation as the parameter-free norm (CoCosNet's ``--PONO``), else InstanceNorm.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 128, pono: bool = True) -> None:
        super().__init__()
        self.pono = pono
        self.norm = None if pono else nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cond_channels, hidden, 3), nn.ReLU())
        self.pad = nn.ReflectionPad2d(1)
        self.gamma = nn.Conv2d(hidden, channels, 3)
        self.beta = nn.Conv2d(hidden, channels, 3)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        normalized = positional_norm(x) if self.pono else self.norm(x)
        cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        h = self.pad(self.shared(cond))
        return normalized * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """SPADE -> LeakyReLU(0.2) -> reflection-padded 3×3 conv, twice, plus a (learned when widths differ) shortcut.

    The convolutions are spectrally normalised (CoCosNet's ``spectralspade...`` norm_G).
    """

    def __init__(self, fin: int, fout: int, cond_channels: int, hidden: int = 128, pono: bool = True) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.pad = nn.ReflectionPad2d(1)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3))
        self.norm_0 = SPADE(fin, cond_channels, hidden, pono)
        self.norm_1 = SPADE(fmid, cond_channels, hidden, pono)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, cond_channels, hidden, pono)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, cond), 0.2)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, cond), 0.2)))
        return skip + dx


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
