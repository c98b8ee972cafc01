"""CoCosNet's correspondence network: domain adaptors, a shared trunk, cosine correlation and the soft warp.

Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet (``NoVGGCorrespondence`` in ``models/networks/correspondence.py``, the
network the released models use: it matches on its own learned adaptors, not on VGG features).

Input semantics (B×S×H×W) and the exemplar (B×3×H×W) are mapped by two adaptors to a shared space at
1/4 resolution (B×4·ngf×H/4×W/4); with ``maskmix`` the resized semantics of each side are concatenated;
a shared residual trunk and two 1×1 projections (``theta`` for the input, ``phi`` for the exemplar) give
the matching features, which are unfolded over a 3×3 window, centred over channels (``--PONO_C``) and
L2-normalised. Their cosine correlation, divided by the temperature 0.01 and soft-maxed over exemplar
positions, warps the 4×-average-pooled exemplar (and the exemplar's semantics for the mask loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.nn.blocks import ResidualBlock, SPADEResBlock, l2_normalize, sn_conv_instance
from midms.nn.correspondence import correlation, normalize_features, soft_warp

DOWN = 4  # the correlation's resolution is 1/DOWN of the image's
NORM_EPS = 1e-8  # added to the norm by the adaptors' L2 normalisation


class DomainAdaptor(nn.Module):
    """Five spectral-instance convolutions (two of them stride 2) and three SPADE residual blocks conditioned
    on the adaptor's own input: B×C_in×H×W -> B×4·ngf×H/4×W/4."""

    def __init__(self, in_channels: int, ngf: int = 64, kernel: int = 3, hidden: int = 128, pono: bool = True):
        super().__init__()
        norm = "pono" if pono else "instance"
        self.convs = nn.ModuleList(
            [
                sn_conv_instance(in_channels, ngf, 3),
                sn_conv_instance(ngf, 2 * ngf, kernel, stride=2),
                sn_conv_instance(2 * ngf, 4 * ngf, 3),
                sn_conv_instance(4 * ngf, 8 * ngf, kernel, stride=2),
                sn_conv_instance(8 * ngf, 8 * ngf, 3),
            ]
        )
        self.blocks = nn.ModuleList(
            [
                SPADEResBlock(8 * ngf, 8 * ngf, in_channels, hidden, norm),
                SPADEResBlock(8 * ngf, 8 * ngf, in_channels, hidden, norm),
                SPADEResBlock(8 * ngf, 4 * ngf, in_channels, hidden, norm),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs[0](x)
        for conv in self.convs[1:]:
            h = conv(F.leaky_relu(h, 0.2))
        for block in self.blocks:
            h = block(h, x)
        return h


def unfold_patches(x: Tensor) -> Tensor:
    """B×C×H×W -> B×(C·16)×(H/4)×(W/4): each 4×4 patch as the channels of its cell (``F.unfold``'s order)."""
    b, _c, hgt, wid = x.shape
    return F.unfold(x, DOWN, stride=DOWN).view(b, -1, hgt // DOWN, wid // DOWN)


def fold_patches(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The inverse of :func:`unfold_patches`: B×(C·16)×h×w cells back to B×C×H×W pixels."""
    return F.fold(x.flatten(2), size, DOWN, stride=DOWN)


class CorrespondenceNet(nn.Module):
    """The correspondence network. :meth:`forward` returns a dict (see its docstring).

    Args:
        semantic_nc: channels of the input semantics (and of the exemplar's semantics).
        ngf: adaptor width; the shared space has 4·ngf channels (256 at ngf 64, as the released code).
        match_channels: channels of the ``theta``/``phi`` projections (256).
        spade_hidden: SPADE embedding width (128).
        adaptor_kernel: kernel of the two strided adaptor convolutions (3 by default; 4 in the CelebA-HQ
            commands of the README's test section, which the released checkpoints' sizes match).
        maskmix: concatenate each side's semantics to its adaptor features before the trunk.
        match_kernel: the unfold window of the matching features (3).
        temperature: softmax temperature of the correlation (0.01).
        warp_bilinear: up-sample the warp bilinearly (``--warp_bilinear``), else nearest.
        warp_patch: warp the exemplar's 4×4 pixel patches instead of its 4×4-averaged colours, so the warp keeps
            full resolution (``--warp_patch``, the DeepFashion commands: ``correspondence.py`` unfolds the exemplar
            with stride 4, warps the patches with the same attention and folds them back; the cycle warp likewise).
        pono: PONO in the adaptors' SPADE blocks.
    """

    def __init__(
        self,
        semantic_nc: int,
        ngf: int = 64,
        match_channels: int = 256,
        spade_hidden: int = 128,
        adaptor_kernel: int = 3,
        maskmix: bool = True,
        match_kernel: int = 3,
        temperature: float = 0.01,
        warp_bilinear: bool = False,
        pono: bool = True,
        warp_patch: bool = False,
    ) -> None:
        super().__init__()
        self.maskmix, self.match_kernel = maskmix, match_kernel
        self.temperature, self.warp_bilinear, self.warp_patch = temperature, warp_bilinear, warp_patch
        self.adaptor_semantics = DomainAdaptor(semantic_nc, ngf, adaptor_kernel, spade_hidden, pono)
        self.adaptor_image = DomainAdaptor(3, ngf, adaptor_kernel, spade_hidden, pono)
        channels = 4 * ngf + (semantic_nc if maskmix else 0)
        self.trunk = nn.Sequential(*[ResidualBlock(channels) for _ in range(4)])
        self.theta = nn.Conv2d(channels, match_channels, 1)  # input side
        self.phi = nn.Conv2d(channels, match_channels, 1)  # exemplar side

    def _matching_features(self, adapted: Tensor, semantics: Tensor, proj: nn.Conv2d) -> Tensor:
        if self.maskmix:
            adapted = torch.cat([adapted, F.interpolate(semantics, size=adapted.shape[2:], mode="nearest")], dim=1)
        f = proj(self.trunk(adapted))  # B×M×h×w
        if self.match_kernel > 1:
            f = F.unfold(f, self.match_kernel, padding=self.match_kernel // 2)  # B×M·k²×hw
        return normalize_features(f.flatten(2))  # centred over channels (PONO_C), unit L2 norm

    def correlate(self, semantics: Tensor, exemplar: Tensor, exemplar_semantics: Tensor) -> tuple[Tensor, dict]:
        """Cosine correlation B×hw×hw (input positions × exemplar positions) at 1/4 resolution, and the
        normalised adaptor features (``adapted_semantics``, ``adapted_exemplar``: B×4·ngf×h×w)."""
        a_sem = l2_normalize(self.adaptor_semantics(semantics), NORM_EPS)
        a_img = l2_normalize(self.adaptor_image(exemplar), NORM_EPS)
        theta = self._matching_features(a_sem, semantics, self.theta)
        phi = self._matching_features(a_img, exemplar_semantics, self.phi)
        corr = correlation(theta, phi, normalize=False)
        return corr, {"adapted_semantics": a_sem, "adapted_exemplar": a_img}

    def upsample(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        if self.warp_bilinear:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=size, mode="nearest")

    def forward(
        self,
        semantics: Tensor,
        exemplar: Tensor,
        exemplar_semantics: Tensor,
        image: Tensor | None = None,
        cycle: bool = False,
        warp_mask: bool = False,
    ) -> dict[str, Tensor]:
        """Returns ``corr`` (B×hw×hw, before the temperature), ``warp`` (the exemplar warped onto the input,
        B×3×H×W), the adaptor features; with ``image`` (the input's real photo, training) ``domain_loss`` = L1
        between the adapted semantics and the adapted photo; with ``cycle`` ``warp_cycle`` (the warp warped back to
        the exemplar: B×3×h×w, or B×3×H×W with ``warp_patch``); with ``warp_mask`` the exemplar's
        semantics warped onto the input (B×S×h×w)."""
        h, w = semantics.shape[2] // DOWN, semantics.shape[3] // DOWN
        corr, out = self.correlate(semantics, exemplar, exemplar_semantics)
        out["corr"] = corr
        if image is not None:
            out["domain_loss"] = F.l1_loss(out["adapted_semantics"], l2_normalize(self.adaptor_image(image), NORM_EPS))
        if self.warp_patch:
            size = tuple(exemplar.shape[2:])
            out["warp"] = fold_patches(soft_warp(corr, unfold_patches(exemplar), self.temperature, (h, w)), size)
            if cycle:  # softmax over input positions: exemplar <- input, patch by patch
                back = soft_warp(corr.transpose(1, 2), unfold_patches(out["warp"]), self.temperature, (h, w))
                out["warp_cycle"] = fold_patches(back, size)
        else:
            warp_low = soft_warp(corr, F.avg_pool2d(exemplar, DOWN), self.temperature, (h, w))
            out["warp"] = self.upsample(warp_low, tuple(exemplar.shape[2:]))
            if cycle:  # softmax over input positions: exemplar <- input
                out["warp_cycle"] = soft_warp(corr.transpose(1, 2), warp_low, self.temperature, (h, w))
        if warp_mask:
            low_sem = F.interpolate(exemplar_semantics, size=(h, w), mode="nearest")
            out["warp_mask"] = soft_warp(corr, low_sem, self.temperature, (h, w))
        return out
