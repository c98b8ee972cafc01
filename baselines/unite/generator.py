"""UNITE's generator: SEACE residual blocks modulated by the input's features, the warped exemplar's and the confidence.

Zhan et al., "Unbalanced Feature Transport for Exemplar-based Image Translation", CVPR 2021;
https://github.com/fnzhan/UNITE: ``SEACEGenerator`` and ``Self_Attn`` in ``models/networks/generator.py``,
``SEACEResnetBlock`` in ``architecture.py``, ``SEACE`` in ``normalization.py``. Module names are the official ones.

SEACE (semantic-exemplar adaptive conditional normalisation) normalises by PONO (``--PONO``) and modulates by
``gamma(m)``, ``beta(m)`` of the mix ``m = seg(s)·(1 - c) + ref(r)·c``: ``s`` the input's adaptor feature of the
block's level, ``r`` the exemplar's warped alike, ``c`` the confidence map, all resized to the block (nearest). In the
blocks with attention, ``r`` first gains ``coef · ref_shared(r)`` aggregated by the attention map of the input's
feature (``Self_Attn``: a softmax of query·key over positions), at the block's size up to the correspondence grid and
at the grid's size above it. The 3×3 convolutions of SEACE are zero-padded, those of the blocks reflection-padded.

As committed, ``SEACEGenerator.forward`` prints the attention maps and stops at ``print(1/0)`` before generating
(``generator.py``, the four lines after the ``Self_Attn`` calls), so the released code cannot translate as it stands;
this is the forward with those debugging lines removed, which the released weights were trained with (their keys
are exactly its modules). Sizes the code writes for 256 pixels (attention at 64, 32, 16; the grid 64) follow the
image here (H/4, H/8, H/16); the width it fixes (64) is ``ngf``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from midms.nn.blocks import SelfAttention, positional_norm


class SEACE(nn.Module):
    """``forward(x, seg, ref, attention, confidence)``; ``feat_nc`` is the width of ``seg`` and ``ref`` (``seg`` has
    ``label_nc`` channels at the image level, where ``feat_nc`` is 3: the warped image)."""

    def __init__(
        self, norm_nc: int, label_nc: int, feat_nc: int, grid: int, hidden: int = 128, attention: bool = False
    ) -> None:
        super().__init__()
        self.feat_nc, self.grid, self.hidden, self.attention = feat_nc, grid, hidden, attention
        seg_nc = label_nc if feat_nc == 3 else feat_nc
        self.seg_shared = nn.Sequential(nn.Conv2d(seg_nc, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.ref_shared = nn.Sequential(nn.Conv2d(feat_nc, feat_nc, 3, padding=1), nn.ReLU())
        self.ref_shared2 = nn.Sequential(nn.Conv2d(feat_nc, hidden, 3, padding=1), nn.ReLU())
        self.coef = nn.Parameter(torch.zeros(()))

    def _aggregate(self, ref: Tensor, attention: Tensor, size: int) -> Tensor:
        b = ref.shape[0]
        feat = self.ref_shared(ref)
        out = torch.bmm(feat.view(b, self.feat_nc, size * size), attention.permute(0, 2, 1))
        return out.view(b, self.feat_nc, size, size)

    def forward(self, x: Tensor, seg: Tensor, ref: Tensor, attention: Tensor | None, confidence: Tensor) -> Tensor:
        normalized = positional_norm(x, 1e-5)
        _, _, h, w = x.shape
        seg = F.interpolate(seg, size=(h, w), mode="nearest")
        ref = F.interpolate(ref, size=(h, w), mode="nearest")
        confidence = F.interpolate(confidence, size=(h, w), mode="nearest").repeat(1, self.hidden, 1, 1)
        seg_feat = self.seg_shared(seg)
        if self.attention:
            if h <= self.grid:
                aggregated = self._aggregate(ref, attention, h)
            else:
                coarse = F.interpolate(ref, size=(self.grid, self.grid), mode="nearest")
                aggregated = F.interpolate(self._aggregate(coarse, attention, self.grid), size=(h, w), mode="nearest")
            ref = self.coef * aggregated + ref
        mixed = seg_feat * (1 - confidence) + self.ref_shared2(ref) * confidence
        return normalized * (1 + self.gamma(mixed)) + self.beta(mixed)


class SEACEResnetBlock(nn.Module):
    """SEACE -> LeakyReLU(0.2) -> reflection-padded spectral 3×3 conv, twice, plus a (learned when widths differ)
    shortcut, as CoCosNet's SPADE block with SEACE in place of SPADE."""

    def __init__(
        self, fin: int, fout: int, label_nc: int, feat_nc: int, grid: int, hidden: int = 128, attention: bool = False
    ) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.pad = nn.ReflectionPad2d(1)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3))
        self.norm_0 = SEACE(fin, label_nc, feat_nc, grid, hidden, attention)
        self.norm_1 = SEACE(fmid, label_nc, feat_nc, grid, hidden, attention)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SEACE(fin, label_nc, feat_nc, grid, hidden, attention)

    def forward(self, x: Tensor, seg: Tensor, ref: Tensor, attention: Tensor | None, confidence: Tensor) -> Tensor:
        cond = (seg, ref, attention, confidence)
        skip = self.conv_s(self.norm_s(x, *cond)) if self.learned_shortcut else x
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, *cond), 0.2)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, *cond), 0.2)))
        return skip + dx


class PositionAttention(nn.Module):
    """``Self_Attn``: the input resized to ``size`` (nearest), softmax over positions of query·key (1×1 convolutions to
    a quarter of the channels, no bias): B×size²×size²."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 4, 1, bias=False)
        self.key_conv = nn.Conv2d(channels, channels // 4, 1, bias=False)

    def forward(self, x: Tensor, size: int) -> Tensor:
        x = F.interpolate(x, size=(size, size), mode="nearest")
        query = self.query_conv(x).flatten(2).permute(0, 2, 1)
        key = self.key_conv(x).flatten(2)
        return F.softmax(torch.bmm(query, key), dim=-1)


class SEACEGenerator(nn.Module):
    """``forward(seg_levels, warped, confidence) -> B×3×H×W`` in [-1, 1].

    ``seg_levels``: the semantics and the input adaptor's levels 1..4 (S, 2·ngf, 4·ngf, 8·ngf, 8·ngf channels);
    ``warped``: the warped exemplar and its warped levels 1..4 (3, 2·ngf, ...), on the correspondence grid;
    ``confidence``: B×1 on the grid. ``image_size`` sets the start (H/32) and the attention sizes.
    """

    def __init__(self, semantic_nc: int, image_size: int, ngf: int = 64, hidden: int = 128) -> None:
        super().__init__()
        nf, grid = ngf, image_size // 4
        self.start, self.grid = image_size // 32, grid

        def block(fin: int, fout: int, feat_nc: int, attention: bool) -> SEACEResnetBlock:
            return SEACEResnetBlock(fin, fout, semantic_nc, feat_nc, grid, hidden, attention)

        self.fc = nn.Conv2d(16 * nf, 16 * nf, 3, padding=1)
        self.G_head_0 = block(16 * nf, 16 * nf, 8 * nf, False)
        self.G_middle_0 = block(16 * nf, 16 * nf, 8 * nf, True)
        self.G_middle_1 = block(16 * nf, 16 * nf, 8 * nf, False)
        self.G_up_0 = block(16 * nf, 8 * nf, 4 * nf, True)
        self.G_up_1 = block(8 * nf, 4 * nf, 4 * nf, False)
        self.attn = SelfAttention(4 * nf, spectral=True)
        self.G_out_0 = block(4 * nf, 2 * nf, 2 * nf, True)
        self.G_out_1 = block(2 * nf, nf, 3, False)
        self.conv_img1 = nn.Conv2d(nf, 3, 3, padding=1)
        self.attn2 = PositionAttention(2 * nf)
        self.attn3 = PositionAttention(4 * nf)
        self.attn4 = PositionAttention(8 * nf)

    def forward(self, seg_levels: list[Tensor], warped: list[Tensor], confidence: Tensor) -> Tensor:
        seg1, seg2, seg3, seg4, seg5 = seg_levels
        ref1, ref2, ref3, ref4, ref5 = warped
        att2 = self.attn2(seg2, size=self.grid)
        att3 = self.attn3(seg3, size=self.grid // 2)
        att4 = self.attn4(seg4, size=self.grid // 4)
        x = F.interpolate(torch.cat([seg5, ref5], 1), size=(self.start, self.start))
        x = self.fc(x)
        x = F.interpolate(self.G_head_0(x, seg5, ref5, None, confidence), scale_factor=2)
        x = self.G_middle_0(x, seg4, ref4, att4, confidence)
        x = F.interpolate(self.G_middle_1(x, seg4, ref4, None, confidence), scale_factor=2)
        x = F.interpolate(self.G_up_0(x, seg3, ref3, att3, confidence), scale_factor=2)
        x = F.interpolate(self.G_up_1(x, seg3, ref3, None, confidence), scale_factor=2)
        x = self.G_out_0(self.attn(x), seg2, ref2, att2, confidence)
        x = self.G_out_1(F.interpolate(x, scale_factor=2), seg1, ref1, None, confidence)
        return torch.tanh(self.conv_img1(F.leaky_relu(x, 0.2)))
