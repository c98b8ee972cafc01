"""Network blocks shared by MIDMs and the CoCosNet baseline (one copy each).

CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet) builds on SPADE (Park et al., CVPR 2019); MIDMs (Seo et al., AAAI 2023,
https://github.com/cvlab-kaist/MIDMs) reuses CoCosNet's blocks in its matching encoders. What the blocks
compute follows ``models/networks/normalization.py``, ``architecture.py`` and ``correspondence.py`` of the
released CoCosNet code (reflection padding, 3×3 kernels, a spectrally normalised residual path, PONO as the
parameter-free norm with ``--PONO``), written from scratch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def positional_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """PONO (Li et al., NeurIPS 2019): normalise each position over channels (unbiased variance, as CoCosNet)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) / (x.var(dim=1, keepdim=True) + eps).sqrt()


def l2_normalize(x: Tensor, eps: float) -> Tensor:
    """Each position's vector divided by its L2 norm over channels, no centring. The released codes differ in
    ``eps`` (CoCosNet's ``feature_normalize`` and MIDMs' own), so every caller states its own."""
    return x / (x.norm(dim=1, keepdim=True) + eps)


def sn_conv_instance(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """``spectralinstance``: a spectrally normalised convolution without bias, then a parameter-free InstanceNorm."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
    return nn.Sequential(spectral_norm(conv), nn.InstanceNorm2d(out_ch, affine=False))


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(m)) + beta(m)``, ``m`` resized to ``x`` (nearest).

    Args:
        channels: channels of ``x``.
        cond_channels: channels of the conditioning map ``m``.
        hidden: width of the shared embedding (128 in SPADE, CoCosNet and MIDMs).
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


class ResidualBlock(nn.Module):
    """Reflection-padded 3×3 conv, InstanceNorm, PReLU, conv, InstanceNorm, plus the input, then the PReLU.

    The residual unit of the matching trunks of CoCosNet (``models/networks/correspondence.py``) and MIDMs
    (``models/midms.py``): one PReLU slope is shared by both activations, as in the released code.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.PReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )
        self.act = self.body[3]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + x)
