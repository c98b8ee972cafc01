"""Network blocks shared by MIDMs and the CoCosNet baseline (one copy each).

CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet) builds on SPADE (Park et al., CVPR 2019); MIDMs (Seo et al., AAAI 2023,
https://github.com/cvlab-kaist/MIDMs) reuses CoCosNet's blocks in its matching encoders. What the blocks
compute follows ``models/networks/normalization.py``, ``architecture.py`` and ``correspondence.py`` of the
released CoCosNet code (reflection padding, 3×3 kernels, a spectrally normalised residual path, PONO as the
parameter-free norm with ``--PONO``) and, with ``norm="batch", padding="zeros"``, of the released SPADE code
(https://github.com/NVlabs/SPADE, ``--norm_G spectralspadesyncbatch3x3``: zero padding, a parameter-free
(synchronised) BatchNorm); written from scratch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

#: the parameter-free norms of a SPADE layer: CoCosNet's PONO, InstanceNorm, SPADE's (synchronised) BatchNorm
SPADE_NORMS = ("pono", "instance", "batch")
#: the padding of every 3×3 convolution in a SPADE block: CoCosNet's reflection, SPADE's zeros
SPADE_PADDINGS = ("reflect", "zeros")


def positional_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """PONO (Li et al., NeurIPS 2019): normalise each position over channels (unbiased variance, as CoCosNet)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) / (x.var(dim=1, keepdim=True) + eps).sqrt()


def l2_normalize(x: Tensor, eps: float) -> Tensor:
    """Each position's vector divided by its L2 norm over channels, no centring. The released codes differ in
    ``eps`` (CoCosNet's ``feature_normalize`` and MIDMs' own), so every caller states its own."""
    return x / (x.norm(dim=1, keepdim=True) + eps)


def sn_conv_instance(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 1, dilation: int = 1
) -> nn.Sequential:
    """``spectralinstance``: a spectrally normalised convolution without bias, then a parameter-free InstanceNorm."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)
    return nn.Sequential(spectral_norm(conv), nn.InstanceNorm2d(out_ch, affine=False))


def _pad(padding: str, width: int = 1) -> nn.Module:
    if padding not in SPADE_PADDINGS:
        raise ValueError(f"padding must be one of {SPADE_PADDINGS}, got {padding!r}")
    return nn.ReflectionPad2d(width) if padding == "reflect" else nn.ZeroPad2d(width)


def _parameter_free_norm(norm: str, channels: int) -> nn.Module | None:
    if norm not in SPADE_NORMS:
        raise ValueError(f"norm must be one of {SPADE_NORMS}, got {norm!r}")
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    # SPADE's SynchronizedBatchNorm2d: running statistics in evaluation; Lightning's sync_batchnorm syncs it over DDP
    return nn.BatchNorm2d(channels, affine=False) if norm == "batch" else None


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(m)) + beta(m)``, ``m`` resized to ``x`` (nearest).

    Args:
        channels: channels of ``x``.
        cond_channels: channels of the conditioning map ``m``.
        hidden: width of the shared embedding (128 in SPADE, CoCosNet and MIDMs).
        norm: the parameter-free norm: ``pono`` (CoCosNet's ``--PONO``), ``instance`` or ``batch`` (SPADE's).
        padding: of the 3×3 convolutions: ``reflect`` (CoCosNet, MIDMs) or ``zeros`` (SPADE).
        pono_eps: PONO's variance epsilon (CoCosNet's 1e-5; DynaST's 1e-8).
    """

    def __init__(
        self,
        channels: int,
        cond_channels: int,
        hidden: int = 128,
        norm: str = "pono",
        padding: str = "reflect",
        pono_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm = _parameter_free_norm(norm, channels)
        self.pono_eps = pono_eps
        self.shared = nn.Sequential(_pad(padding), nn.Conv2d(cond_channels, hidden, 3), nn.ReLU())
        self.pad = _pad(padding)
        self.gamma = nn.Conv2d(hidden, channels, 3)
        self.beta = nn.Conv2d(hidden, channels, 3)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        normalized = positional_norm(x, self.pono_eps) if self.norm is None else self.norm(x)
        cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        h = self.pad(self.shared(cond))
        return normalized * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """SPADE -> LeakyReLU(0.2) -> padded 3×3 conv, twice, plus a (learned when widths differ) shortcut.

    The convolutions are spectrally normalised (the ``spectralspade...`` norm_G of CoCosNet and SPADE); ``norm``,
    ``padding`` and ``pono_eps`` are those of :class:`SPADE`, for its layers and the block's own convolutions.
    ``dilation`` dilates the two 3×3 convolutions and widens their padding alike (UNITE's adaptor,
    ``Ada_SPADEResnetBlock(dilation=4)``); the SPADE layers keep theirs.
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        cond_channels: int,
        hidden: int = 128,
        norm: str = "pono",
        padding: str = "reflect",
        pono_eps: float = 1e-5,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.pad = _pad(padding, dilation)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, dilation=dilation))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, dilation=dilation))
        self.norm_0 = SPADE(fin, cond_channels, hidden, norm, padding, pono_eps)
        self.norm_1 = SPADE(fmid, cond_channels, hidden, norm, padding, pono_eps)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, cond_channels, hidden, norm, padding, pono_eps)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, cond), 0.2)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, cond), 0.2)))
        return skip + dx


class ResidualBlock(nn.Module):
    """Reflection-padded 3×3 conv, norm, PReLU, conv, norm, plus the input, then the PReLU.

    The residual unit of the matching trunks of CoCosNet (``models/networks/correspondence.py``) and MIDMs
    (``models/midms.py``), with a parameter-free InstanceNorm (``norm="instance"``); DynaST's
    (https://github.com/Huage001/DynaST, ``models/networks/architecture.py``) has an affine (synchronised) BatchNorm
    with running statistics (``norm="batch"``). One PReLU slope is shared by both activations, as in the released
    codes.
    """

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        if norm not in ("instance", "batch"):
            raise ValueError(f"norm must be instance or batch, got {norm!r}")

        def make_norm() -> nn.Module:
            return nn.InstanceNorm2d(channels) if norm == "instance" else nn.BatchNorm2d(channels)

        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            make_norm(),
            nn.PReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            make_norm(),
        )
        self.act = self.body[3]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + x)


class SelfAttention(nn.Module):
    """Non-local self-attention of SAGAN/BigGAN (CoCosNet's ``--use_attention``): keys and values max-pooled 2×,
    a learned gain ``gamma`` starting at 0, so the block is the identity at initialisation."""

    def __init__(self, channels: int, spectral: bool = True) -> None:
        super().__init__()
        self.channels = channels

        def conv(cin: int, cout: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 1, bias=False)
            return spectral_norm(layer) if spectral else layer

        self.theta = conv(channels, channels // 8)
        self.phi = conv(channels, channels // 8)
        self.g = conv(channels, channels // 2)
        self.o = conv(channels // 2, channels)
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
    gain 0.02 and zero biases for plain convolutions and linear layers; an affine BatchNorm's scale drawn from
    N(1, gain) and its shift 0. As in the released codes, spectrally normalised layers keep PyTorch's default
    initialisation (their ``weight`` is not a parameter there either), and the parameter-free norms have nothing
    to initialise.
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d | nn.Linear) and not parametrize.is_parametrized(m, "weight"):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
