"""CoCosNet v2's correspondence: adaptive feature pyramids and hierarchical matching, dense at 1/8, PatchMatch above.

Zhou et al., "CoCosNet v2: Full-Resolution Correspondence Learning for Image Translation", CVPR 2021;
https://github.com/microsoft/CoCosNet-v2, ``models/networks/correspondence.py`` (``NoVGGHPMCorrespondence``,
``AdaptiveFeatureGenerator``) and ``architecture.py``. What it computes follows that code:

- two adaptors (the input semantics; the exemplar with its semantics), each: spectral-instance convolutions down to
  1/8 with residual blocks, then SPADE residual blocks back up, conditioned on the adaptor's own input (PONO eps 1e-8,
  hidden width 128, reflection padding), giving levels 1/8, 1/4, 1/2 and 1 (widths 4, 4, 2, 1 × ``nef``); every level
  L2-normalised;
- per level, 1×1 projections ``theta_i`` (input) and ``phi_i`` (exemplar) to ``nef`` channels, centred over channels
  and L2-normalised (``--PONO_C``, ``--match_kernel 1``);
- level 0: a dense softmax (``temperature`` 0.01) warps the exemplar average-pooled to 1/8; in training the cycle
  warp sends that warp back through the transposed softmax;
- levels 1-3: 16 candidates a position, from the coarser level's first candidate (level 1: its best match) doubled
  and a 4×4 window of dilation 2 around it, refined by :class:`~.patch_match.PatchMatchGRU` on the exemplar pooled to
  the level.

The official code writes the four levels' sizes (64, 128, 256, 512: the 512-pixel DeepFashion-HD model) into the code;
here they are the features' own, which at 512 px is the same computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from midms.baselines.cocosnet_v2.patch_match import PatchMatchGRU, indices_to_offsets
from torch import Tensor, nn

from midms.nn.blocks import ResidualBlock, SPADEResBlock, l2_normalize, sn_conv_instance

#: ``PositionalNorm2d``'s epsilon in CoCosNet v2's ``normalization.py``
PONO_EPS = 1e-8
#: ``util.feature_normalize``'s epsilon
L2_EPS = 1e-10
#: the PatchMatch initialisation of ``multi_scale_patch_match``: a 4×4 window, centred at 1, dilation 2
WINDOW, CENTRE, DILATION = 4, 1, 2


def centre_and_normalize(x: Tensor, eps: float = L2_EPS) -> Tensor:
    """``match_kernel_and_pono_c`` with kernel 1 and ``--PONO_C``: subtract each position's channel mean, then
    divide by its L2 norm (+eps)."""
    b, c, h, w = x.shape
    x = x.view(b, c, -1)
    x = x - x.mean(dim=1, keepdim=True)
    return torch.div(x, torch.norm(x, 2, 1, keepdim=True) + eps).view(b, -1, h, w)


class AdaptiveFeatures(nn.Module):
    """``AdaptiveFeatureGenerator``: ``forward(x) -> [1/8, 1/4, 1/2, 1]`` features (widths 4, 4, 2, 1 × ``nef``)."""

    def __init__(self, in_channels: int, nef: int = 32, kernel: int = 3, spade_hidden: int = 128) -> None:
        super().__init__()
        pad = (kernel - 1) // 2

        def down(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(sn_conv_instance(cin, cout, kernel, stride=2, padding=pad), ResidualBlock(cout))

        def spade(cin: int, cout: int) -> SPADEResBlock:
            return SPADEResBlock(cin, cout, in_channels, spade_hidden, "pono", "reflect", PONO_EPS)

        self.layer1 = sn_conv_instance(in_channels, nef, 3, stride=1, padding=pad)
        self.layer2 = nn.Sequential(sn_conv_instance(nef, 2 * nef, 3, stride=1, padding=1), ResidualBlock(2 * nef))
        self.layer3 = down(2 * nef, 4 * nef)
        self.layer4 = down(4 * nef, 4 * nef)
        self.layer5 = down(4 * nef, 4 * nef)
        self.head_0 = spade(4 * nef, 4 * nef)
        self.G_middle_0 = spade(4 * nef, 4 * nef)
        self.G_middle_1 = spade(4 * nef, 2 * nef)
        self.G_middle_2 = spade(2 * nef, nef)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x: Tensor) -> list[Tensor]:
        x1 = self.layer1(x)
        x2 = self.layer2(F.leaky_relu(x1, 0.2))
        x3 = self.layer3(F.leaky_relu(x2, 0.2))
        x4 = self.layer4(F.leaky_relu(x3, 0.2))
        x5 = self.layer5(F.leaky_relu(x4, 0.2))
        x6 = self.head_0(x5, x)
        x7 = self.G_middle_0(self._up(x6) + x4, x)
        x8 = self.G_middle_1(self._up(x7) + x3, x)
        x9 = self.G_middle_2(self._up(x8) + x2, x)
        return [x6, x7, x8, x9]


def _initial_offsets(best: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """16 candidates at the finer level from each coarser position's match (``best``: B×(size/2)²×1 indices)."""
    b = best.shape[0]
    half = size // 2
    rows, cols = indices_to_offsets(best.permute(0, 2, 1).view(b, 1, half, half).float())
    steps = torch.arange(WINDOW, dtype=best.dtype, device=best.device)
    dx = steps.unsqueeze(1).expand(-1, WINDOW).contiguous().view(-1) - CENTRE
    dy = steps.unsqueeze(0).expand(WINDOW, -1).contiguous().view(-1) - CENTRE
    dx = dx.view(1, WINDOW**2, 1, 1) * DILATION
    dy = dy.view(1, WINDOW**2, 1, 1) * DILATION
    return F.interpolate(2 * rows + dx, scale_factor=2), F.interpolate(2 * cols + dy, scale_factor=2)


def _pool(x: Tensor, factor: int) -> Tensor:
    """B×C×H×W averaged over ``factor``² blocks, flattened to B×C×(H/factor·W/factor)."""
    return (x if factor == 1 else F.avg_pool2d(x, factor, stride=factor)).reshape(*x.shape[:2], -1)


class CorrespondenceV2(nn.Module):
    """``NoVGGHPMCorrespondence``: ``forward(semantics, exemplar, exemplar_semantics, image=None, cycle=False)`` ->
    ``{"warps": [1/8, 1/4, 1/2, 1], "warp_cycle"?, "domain_loss"?}``."""

    def __init__(
        self,
        semantic_nc: int,
        nef: int = 32,
        kernel: int = 3,
        temperature: float = 0.01,
        iterations: int = 5,
        gru_hidden: int = 32,
        gru_motion: int = 64,
        spade_hidden: int = 128,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.adaptive_model_seg = AdaptiveFeatures(semantic_nc, nef, kernel, spade_hidden)
        self.adaptive_model_img = AdaptiveFeatures(semantic_nc + 3, nef, kernel, spade_hidden)
        for i, width in enumerate((4 * nef, 4 * nef, 2 * nef, nef)):
            self.add_module(f"phi_{i}", nn.Conv2d(width, nef, 1))
            self.add_module(f"theta_{i}", nn.Conv2d(width, nef, 1))
        self.patch_match = PatchMatchGRU(nef, temperature, iterations, gru_hidden, gru_motion)

    def _dense(self, f1: Tensor, f2: Tensor, ref: Tensor, cycle: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        b, c, h, w = f1.shape
        ref = F.avg_pool2d(ref, 8, stride=8).view(b, 3, h * w)
        scores = torch.matmul(f1.view(b, c, h * w).permute(0, 2, 1), f2.view(b, c, h * w)) / self.temperature
        attention = F.softmax(scores, dim=-1)
        y = torch.matmul(attention, ref.permute(0, 2, 1))
        y_cycle = None
        if cycle:
            y_cycle = torch.matmul(F.softmax(scores.transpose(1, 2), dim=-1), y).permute(0, 2, 1).view(b, 3, h, w)
        return attention, y.permute(0, 2, 1).view(b, 3, h, w), y_cycle

    def forward(
        self,
        semantics: Tensor,
        exemplar: Tensor,
        exemplar_semantics: Tensor,
        image: Tensor | None = None,
        cycle: bool = False,
        extra: Tensor | None = None,
    ) -> dict:
        """``image``: the ground truth (training: the domain-alignment term); ``cycle``: the cycle warp; ``extra``:
        exemplar-aligned values warped by the same weights at every level (``extra_warps``)."""
        out: dict = {}
        seg = [l2_normalize(f, L2_EPS) for f in self.adaptive_model_seg(semantics)]
        ref_input = torch.cat((exemplar, exemplar_semantics), dim=1)
        ref = [l2_normalize(f, L2_EPS) for f in self.adaptive_model_img(ref_input)]
        if image is not None:  # the domain-alignment term: the exemplar adaptor on the ground truth
            paired = self.adaptive_model_img(torch.cat((image, semantics), dim=1))
            out["domain_loss"] = sum(
                F.l1_loss(s, l2_normalize(p, L2_EPS)) * 1.0 for s, p in zip(seg, paired, strict=True)
            )
        theta = [centre_and_normalize(getattr(self, f"theta_{i}")(f)) for i, f in enumerate(seg)]
        phi = [centre_and_normalize(getattr(self, f"phi_{i}")(f)) for i, f in enumerate(ref)]
        warps: list[Tensor] = []
        extra_warps: list[Tensor] = []
        attention, y, y_cycle = self._dense(theta[0], phi[0], exemplar, cycle)
        if y_cycle is not None:
            out["warp_cycle"] = y_cycle
        warps.append(y)
        if extra is not None:
            pooled = _pool(extra, 8)
            warp = torch.matmul(attention, pooled.permute(0, 2, 1)).permute(0, 2, 1)
            extra_warps.append(warp.view(y.shape[0], -1, *y.shape[2:]))
        previous: Tensor = attention
        for level in (1, 2, 3):
            f1, f2 = theta[level], phi[level]
            b, _, size, _ = f1.shape
            with torch.no_grad():
                # the first level starts from the dense level's best match, the others from the first candidate
                best = torch.topk(previous, 1, dim=-1)[-1] if level == 1 else previous[:, :, :1]
                rows, cols = _initial_offsets(best, size)
            factor = exemplar.shape[-1] // size
            extra_values = None if extra is None else _pool(extra, factor)
            previous, y, y_extra = self.patch_match(f1, f2, _pool(exemplar, factor), rows, cols, extra_values)
            warps.append(y.view(b, 3, size, size))
            if y_extra is not None:
                extra_warps.append(y_extra.view(b, -1, size, size))
        out["warps"] = warps
        if extra is not None:
            out["extra_warps"] = extra_warps
        return out
