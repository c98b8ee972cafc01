"""UNITE's correspondence network: multi-level domain adaptors, marginal and confidence branches, the transport warp.

Zhan et al., "Unbalanced Feature Transport for Exemplar-based Image Translation", CVPR 2021;
https://github.com/fnzhan/UNITE, ``models/networks/correspondence.py`` (``NoVGGCorrespondence``) and
``models/networks/generator.py`` (``AdaptiveFeatureGenerator``). Module names are the official ones, so a released
``latest_net_Corr.pth`` loads after the spectral-norm and trunk renames only (:mod:`.released`).

What differs from CoCosNet's correspondence (:mod:`baselines.cocosnet.correspondence`):

- the adaptor returns five levels (2·ngf and 4·ngf at 1/2; 8·ngf twice and the 4·ngf output at 1/4); after CoCosNet's
  two 8·ngf SPADE blocks comes a third, then a dilated one (``deeper2``: dilation 4, 8·ngf -> 4·ngf) and a dilated
  spectral-instance convolution (``degridding0``, dilation 2); with ``adaptor_nonlocal`` a non-spectral non-local
  block follows the first SPADE block;
- ``use_coordconv`` appends x, y and radius channels to the normalised adaptor features before the semantics;
- the marginals ``a`` and ``b`` (softmax over positions of each side's ``*_w`` projection against the other side's
  mean) and a confidence map (``sigmoid(10·(max_j corr_conf - its mean))`` from the ``*_conf`` projections);
- the warp is the transport plan of :mod:`.transport` instead of a temperature softmax. It warps the exemplar resized
  to the correlation's grid (nearest, not averaged), each adaptor level of the exemplar resized alike, and for the
  losses the exemplar's semantics (``warp_mask``) and, normalised over the input index, the warp back (``cycle``).

The released code writes the grid as 64 and the image as 256 (``view(-1, 1, 64, 64)``, ``F.interpolate(..., 64)``);
here both follow the input (its size / 4 and its size), the same at 256 pixels. The widths it fixes (64 for the
adaptors, 256 for the projections) are ``ngf`` and ``match_channels``. Not ported: the marginal contrastive loss
(``--mcl``, off in every released command) and the domain classifier (``--weight_domainC``, 0).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from midms.baselines.cocosnet.correspondence import CorrespondenceNet
from midms.baselines.unite.transport import BLUR, sinkhorn_potentials, transport_plan
from torch import Tensor, nn

from midms.nn.blocks import ResidualBlock, SelfAttention, SPADEResBlock, l2_normalize, sn_conv_instance

DOWN = 4  # the correspondence grid is 1/DOWN of the image
EPS = sys.float_info.epsilon  # ``util.feature_normalize`` / ``mean_normalize``: added to the norm
CONFIDENCE_SCALE = 10.0  # ``torch.sigmoid(conf_map * 10.0)``


def mean_normalize(x: Tensor) -> Tensor:
    """Centre over dim 1 (``--PONO_C``), then divide by the L2 norm over dim 1 (``util.mean_normalize``)."""
    x = x - x.mean(dim=1, keepdim=True)
    return x / (torch.norm(x, 2, 1, keepdim=True) + EPS)


def add_coordinates(x: Tensor) -> Tensor:
    """``addcoords``: x, y in [-1, 1] over the width and height, and the radius sqrt(x² + y²), appended as channels."""
    b, _, h, w = x.shape
    xx = (torch.arange(w, dtype=x.dtype, device=x.device) / (w - 1) * 2 - 1).view(1, 1, 1, w).expand(b, 1, h, w)
    yy = (torch.arange(h, dtype=x.dtype, device=x.device) / (h - 1) * 2 - 1).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([x, xx, yy, torch.sqrt(xx**2 + yy**2)], dim=1)


class AdaptiveFeatureGenerator(nn.Module):
    """B×C_in×H×W -> five levels: (2·ngf, 4·ngf at H/2; 8·ngf, 8·ngf, 4·ngf at H/4)."""

    def __init__(
        self, in_channels: int, ngf: int = 64, kernel: int = 3, hidden: int = 128, nonlocal_attention: bool = False
    ):
        super().__init__()
        self.layer1 = sn_conv_instance(in_channels, ngf, 3)
        self.layer2 = sn_conv_instance(ngf, 2 * ngf, kernel, stride=2)
        self.layer3 = sn_conv_instance(2 * ngf, 4 * ngf, 3)
        self.layer4 = sn_conv_instance(4 * ngf, 8 * ngf, kernel, stride=2)
        self.layer5 = sn_conv_instance(8 * ngf, 8 * ngf, 3)

        def block(fin: int, fout: int, dilation: int = 1) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, in_channels, hidden, "pono", "reflect", dilation=dilation)

        self.head_0 = block(8 * ngf, 8 * ngf)
        self.attn = SelfAttention(8 * ngf, spectral=False) if nonlocal_attention else None
        self.G_middle_0 = block(8 * ngf, 8 * ngf)
        self.G_middle_1 = block(8 * ngf, 8 * ngf)
        self.deeper2 = block(8 * ngf, 4 * ngf, dilation=4)
        self.degridding0 = sn_conv_instance(4 * ngf, 4 * ngf, 3, padding=2, dilation=2)

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.layer2(F.leaky_relu(self.layer1(x), 0.2))
        level2 = h
        h = self.layer3(F.leaky_relu(h, 0.2))
        level3 = h
        h = self.layer5(F.leaky_relu(self.layer4(F.leaky_relu(h, 0.2)), 0.2))
        h = self.head_0(h, x)
        level4 = h
        if self.attn is not None:
            h = self.attn(h)
        h = self.G_middle_1(self.G_middle_0(h, x), x)
        level5 = h
        return [level2, level3, level4, level5, self.degridding0(self.deeper2(h, x))]


class UniteCorrespondence(nn.Module):
    """The correspondence network; :meth:`forward` returns a dict (see its docstring).

    Args:
        semantic_nc: channels of the semantics (both sides).
        ngf: adaptor width (64 in the released code).
        match_channels: width of the six projections (256).
        spade_hidden: SPADE embedding width in the adaptors (128).
        adaptor_kernel: kernel of the two strided adaptor convolutions (3).
        maskmix: concatenate each side's semantics before the trunk.
        use_coordconv: append coordinate channels before the trunk.
        adaptor_nonlocal: the non-local block in the adaptors.
        match_kernel: unfold window of the matching features (3).
        warp_bilinear: up-sample the warp bilinearly, else nearest.
    """

    def __init__(
        self,
        semantic_nc: int,
        ngf: int = 64,
        match_channels: int = 256,
        spade_hidden: int = 128,
        adaptor_kernel: int = 3,
        maskmix: bool = True,
        use_coordconv: bool = False,
        adaptor_nonlocal: bool = False,
        match_kernel: int = 3,
        warp_bilinear: bool = False,
    ) -> None:
        super().__init__()
        self.maskmix, self.use_coordconv = maskmix, use_coordconv
        self.match_kernel, self.warp_bilinear = match_kernel, warp_bilinear
        self.adaptive_model_seg = AdaptiveFeatureGenerator(
            semantic_nc, ngf, adaptor_kernel, spade_hidden, adaptor_nonlocal
        )
        self.adaptive_model_img = AdaptiveFeatureGenerator(3, ngf, adaptor_kernel, spade_hidden, adaptor_nonlocal)
        channels = 4 * ngf + (semantic_nc if maskmix else 0) + (3 if use_coordconv else 0)
        self.trunk = nn.Sequential(*[ResidualBlock(channels) for _ in range(4)])
        for name in ("phi", "theta", "phi_w", "theta_w", "phi_conf", "theta_conf"):
            setattr(self, name, nn.Conv2d(channels, match_channels, 1))

    upsample = CorrespondenceNet.upsample  # the warp up-sampled as CoCosNet's: bilinear or nearest

    def _trunk(self, adapted: Tensor, semantics: Tensor) -> Tensor:
        adapted = l2_normalize(adapted, EPS)
        if self.use_coordconv:
            adapted = add_coordinates(adapted)
        if self.maskmix:
            adapted = torch.cat([adapted, F.interpolate(semantics, size=adapted.shape[2:], mode="nearest")], 1)
        return self.trunk(adapted)

    def _unfolded(self, proj: nn.Conv2d, features: Tensor) -> Tensor:
        k = self.match_kernel
        return mean_normalize(F.unfold(proj(features), kernel_size=k, padding=k // 2))  # B×M·k²×N

    def plan(
        self, semantics: Tensor, exemplar: Tensor, exemplar_semantics: Tensor, image: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The adaptor levels, the confidence map, the marginals and the transport plan (``plan``: B×N×N rows
        normalised; ``plan_raw`` unnormalised); with ``image`` the domain-alignment L1 (``domain_loss``)."""
        b = semantics.shape[0]
        h, w = semantics.shape[2] // DOWN, semantics.shape[3] // DOWN
        seg_levels = self.adaptive_model_seg(semantics)
        ref_levels = self.adaptive_model_img(exemplar)
        out: dict = {"seg_levels": seg_levels, "ref_levels": ref_levels}
        if image is not None:
            pair = l2_normalize(self.adaptive_model_img(image)[-1], EPS)
            out["domain_loss"] = F.l1_loss(l2_normalize(seg_levels[-1], EPS), pair)
        cont = self._trunk(seg_levels[-1], semantics)
        ref = self._trunk(ref_levels[-1], exemplar_semantics)

        theta = self._unfolded(self.theta, cont)
        theta_t = theta.permute(0, 2, 1).contiguous()  # B×N×D
        phi = self._unfolded(self.phi, ref)  # B×D×N
        phi_t = phi.permute(0, 2, 1).contiguous()

        phi_w = mean_normalize(self.phi_w(ref).view(b, self.phi_w.out_channels, -1))
        theta_w = mean_normalize(self.theta_w(cont).view(b, self.theta_w.out_channels, -1))
        n = theta_t.shape[1]
        a = F.softmax(torch.matmul(theta_w.permute(0, 2, 1).contiguous(), phi_w.mean(-1, keepdim=True)).view(b, n), -1)
        bw = F.softmax(torch.matmul(phi_w.permute(0, 2, 1).contiguous(), theta_w.mean(-1, keepdim=True)).view(b, n), -1)

        phi_c = mean_normalize(self.phi_conf(ref).view(b, self.phi_conf.out_channels, -1))
        theta_c = mean_normalize(self.theta_conf(cont).view(b, self.theta_conf.out_channels, -1))
        conf = torch.max(torch.matmul(theta_c.permute(0, 2, 1).contiguous(), phi_c), -1, keepdim=True)[0]
        conf = (conf - conf.mean(dim=1, keepdim=True)).view(b, 1, h, w)
        out["confidence"] = torch.sigmoid(conf * CONFIDENCE_SCALE)
        out["marginals"] = (a, bw)

        potential_x, potential_y = sinkhorn_potentials(a, theta_t, bw, phi_t)
        out["plan_raw"], out["plan"] = transport_plan(potential_x, potential_y, a, bw, theta_t, phi, BLUR)
        return out

    @staticmethod
    def apply_plan(plan: Tensor, values: Tensor, hw: tuple[int, int]) -> Tensor:
        """Warp B×C×h×w exemplar-grid ``values`` by a row-normalised plan: B×C×h×w on the input grid, laid out in
        memory as the released code leaves it (channels last), which the generator's convolutions see."""
        b, c = values.shape[:2]
        warped = torch.matmul(plan, values.view(b, c, -1).permute(0, 2, 1))
        return warped.permute(0, 2, 1).view(b, c, *hw)

    def forward(
        self,
        semantics: Tensor,
        exemplar: Tensor,
        exemplar_semantics: Tensor,
        image: Tensor | None = None,
        cycle: bool = False,
        warp_mask: bool = False,
    ) -> dict[str, Tensor]:
        """:meth:`plan`'s outputs and ``warp_low`` (the exemplar warped on the grid, B×3×h×w), ``warp`` (up-sampled to
        H×W), ``warped_levels`` (the exemplar's adaptor levels 1..4 warped: the generator's ``ref_feat2..5``); with
        ``warp_mask`` the exemplar's semantics warped (B×S×h×w); with ``cycle`` ``warp_cycle`` (the warp carried back
        by the plan normalised over input positions, B×3×h×w)."""
        hw = (semantics.shape[2] // DOWN, semantics.shape[3] // DOWN)
        out = self.plan(semantics, exemplar, exemplar_semantics, image)
        plan = out["plan"]
        out["warp_low"] = self.apply_plan(plan, F.interpolate(exemplar, size=hw, mode="nearest"), hw)
        out["warp"] = self.upsample(out["warp_low"].contiguous(), tuple(exemplar.shape[2:]))
        out["warped_levels"] = [
            self.apply_plan(plan, F.interpolate(level, size=hw, mode="nearest"), hw) for level in out["ref_levels"][:4]
        ]
        if warp_mask:
            low = F.interpolate(exemplar_semantics, size=hw, mode="nearest")
            out["warp_mask"] = self.apply_plan(plan, low, hw).contiguous()
        if cycle:
            back = out["plan_raw"].transpose(1, 2)
            back = back / back.sum(-1).view(-1, back.shape[1], 1)
            out["warp_cycle"] = self.apply_plan(back, out["warp_low"].contiguous(), hw).contiguous()
        return out
