"""DynaST's generator: two pyramid encoders, dynamic attention level by level, a decoder that fuses the levels.

Liu et al., "DynaST: Dynamic Sparse Transformer for Exemplar-Guided Image Generation", ECCV 2022;
https://github.com/Huage001/DynaST (``models/networks/generator.py``, ``architecture.py``,
``dynast_transformer.py``). What each part computes follows that code:

- ``encoder_q`` on the input semantics and ``encoder_kv`` on ``cat(exemplar, its semantics)``: four levels
  (1, 1/2, 1/4, 1/8; widths ngf·{1, 2, 4, 8} capped by ``max_multi``), each a spectrally normalised 3×3 conv
  (reflection padding, stride 2 after the first), InstanceNorm and a residual block with an affine BatchNorm
  (:class:`~midms.nn.blocks.ResidualBlock` with ``norm="batch"``);
- per level, SPADE residual blocks (:class:`SPADEResBlock` here: PReLU, no shortcut, hidden width = the block's
  width, PONO with eps 1e-8) embed the query features on the input and the key features on the exemplar's input;
- ``n_layers`` attention blocks per level (:class:`AttentionBlock`): queries and keys L2-normalised and concatenated
  with a learned positional embedding (``pos_embed`` at 1/8, up-sampled by ``pos_43/32/21``), then dense attention at
  1/8 and sparse attention below (:mod:`.attention`), fused as ``PONO(attended + (1 - confidence)·SPADE(q) + q)``
  and a residual block;
- a decoder (bilinear ×2 up-sampling, 3×3 conv, ReLU) carries the result up, adding each level's attention output
  through a SPADE block (``embed_3``, ``embed_2``), ending in a 3×3 conv and tanh.

As in the released code, the last fusion reuses ``embed_q1`` where ``embed_1`` would be expected
(``generator.py``: ``x = self.embed_q1(x + x1, seg_map)``), so ``embed_1`` is built (the released file holds it) and
never used. The positional embedding has the size of the image at 1/8: a network serves one image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from midms.baselines.dynast.attention import dense_attention, inner_scale_attention, inter_scale_attention
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from midms.nn.blocks import SPADE, ResidualBlock, l2_normalize, positional_norm

#: PONO's epsilon in DynaST's ``PositionalNorm2d`` (CoCosNet's is 1e-5)
PONO_EPS = 1e-8
#: ``util.feature_normalize``'s epsilon
L2_EPS = 1e-10
#: the levels, coarsest first, and their down-sampling factors
LEVELS = (4, 3, 2, 1)
FACTOR = {4: 8, 3: 4, 2: 2, 1: 1}


def reflect_conv(cin: int, cout: int, stride: int = 1, spectral: bool = False) -> nn.Module:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect")
    return spectral_norm(conv) if spectral else conv


def dynast_spade(channels: int, cond_channels: int) -> SPADE:
    """DynaST's SPADE: hidden width = ``channels``, reflection padding, PONO with eps 1e-8."""
    return SPADE(channels, cond_channels, hidden=channels, norm="pono", padding="reflect", pono_eps=PONO_EPS)


class SPADEResBlock(nn.Module):
    """DynaST's ``SPADEResnetBlock``: ``act(x + conv(act(SPADE(conv(act(SPADE(x)))))))`` with one shared PReLU,
    spectrally normalised reflection-padded convolutions and no shortcut convolution. ``spade`` builds its two
    SPADE layers (MATEBIT's carry an unused coordinate attention)."""

    def __init__(self, channels: int, cond_channels: int, spade=dynast_spade) -> None:
        super().__init__()
        self.conv_0 = reflect_conv(channels, channels, spectral=True)
        self.conv_1 = reflect_conv(channels, channels, spectral=True)
        self.norm_0 = spade(channels, cond_channels)
        self.norm_1 = spade(channels, cond_channels)
        self.act = nn.PReLU()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        dx = self.conv_0(self.act(self.norm_0(x, cond)))
        dx = self.conv_1(self.act(self.norm_1(dx, cond)))
        return self.act(x + dx)


class FeatureEncoder(nn.Module):
    """DynaST's ``FeatureGenerator`` with ``norm='instance'``: returns the levels coarsest first (1/8, ..., 1).
    ``residual_norm``: of its residual blocks (DynaST's BatchNorm; MATEBIT's InstanceNorm)."""

    def __init__(self, in_channels: int, widths: list[int], residual_norm: str = "batch") -> None:
        super().__init__()
        for i, width in enumerate(widths):
            cin = in_channels if i == 0 else widths[i - 1]
            conv = reflect_conv(cin, width, stride=1 if i == 0 else 2, spectral=True)
            block = nn.Sequential(conv, nn.InstanceNorm2d(width), ResidualBlock(width, norm=residual_norm))
            self.add_module(f"layer{i + 1}", block)

    def forward(self, x: Tensor) -> list[Tensor]:
        levels = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            levels.append(x)
        return levels[::-1]


class AttentionBlock(nn.Module):
    """DynaST's ``DynamicTransformerBlock`` (``kind="dense"``) and ``DynamicSparseTransformerBlock`` (``"inter"``,
    ``"inner"``): 1×1 projections ``f``, ``g`` (queries, keys), ``h`` (values), ``f_prune``, ``g_prune`` (the pruning
    scores); the attended values fused with the query's SPADE features by the confidence."""

    def __init__(
        self, qk_channels: int, v_channels: int, prune_channels: int, cond_channels: int, kind: str, spade=dynast_spade
    ):
        super().__init__()
        if kind not in ("dense", "inter", "inner"):
            raise ValueError(f"kind must be dense, inter or inner, got {kind!r}")
        self.kind = kind
        self.f = nn.Conv2d(qk_channels, qk_channels, 1)
        self.g = nn.Conv2d(qk_channels, qk_channels, 1)
        self.h = nn.Conv2d(v_channels, v_channels, 1)
        self.f_prune = nn.Conv2d(qk_channels, prune_channels, 1)
        self.g_prune = nn.Conv2d(qk_channels, prune_channels, 1)
        self.spade = spade(v_channels, cond_channels)
        self.res_block = ResidualBlock(v_channels, norm="batch")

    def refine(self, fused: Tensor) -> Tensor:
        """The block's last step on the fused features (DynaST: a residual block)."""
        return self.res_block(fused)

    def forward(
        self,
        q: Tensor,
        kv: Tensor,
        pos: Tensor,
        cond: Tensor,
        matches: Tensor | None,
        smooth: float | None,
        warp_values: Tensor | None = None,
        need_index: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Returns the block's output, the warp (or None) and the matches for the next block: the correlation
        (dense) or the top-k indices (sparse; None when ``need_index`` is false)."""
        pos = pos.repeat(q.shape[0], 1, 1, 1)
        query = torch.cat([l2_normalize(q, L2_EPS), pos], dim=1)
        key = torch.cat([l2_normalize(kv, L2_EPS), pos], dim=1)
        args = (self.f(query), self.g(key), self.f_prune(query), self.g_prune(key), self.h(kv))
        if self.kind == "dense":
            attended, matches, conf, warp = dense_attention(*args, smooth, warp_values)
        else:
            attend = inter_scale_attention if self.kind == "inter" else inner_scale_attention
            attended, matches, conf, warp = attend(*args, matches, smooth, warp_values, need_index)
        fused = positional_norm(attended + (1 - conf) * self.spade(q, cond) + q, PONO_EPS)
        return self.refine(fused), warp, matches


def _up(cin: int, cout: int, act: nn.Module) -> nn.Sequential:
    """Bilinear ×2 (align_corners) then a reflection-padded 3×3 conv and ``act``: the decoders and ``pos_*``."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), reflect_conv(cin, cout), act)


class DynaSTGenerator(nn.Module):
    """``forward(semantics, exemplar, exemplar_semantics, warps=False) -> {"fake", "warps"}``.

    Args:
        semantic_nc: input channels (20 for DeepFashion's pose).
        image_size: the (square) image side, a multiple of 16; sets the positional embedding (size/8).
        ngf, max_multi: widths ngf·min(m, max_multi) for m = 1, 2, 4, 8 (released: 64, 8).
        n_layers: attention blocks per level (the released DeepFashion commands: 2).
        top_k: matches kept per query between blocks (4).
        smooth: the sparse levels' correlation temperature (0.01); the dense level divides by sqrt(width).
        pos_dim, prune_dim: positional and pruning widths per ngf (16, 16), scaled like the features.
    """

    def __init__(
        self,
        semantic_nc: int,
        image_size: int,
        ngf: int = 64,
        max_multi: int = 8,
        n_layers: int = 2,
        top_k: int = 4,
        smooth: float = 0.01,
        pos_dim: int = 16,
        prune_dim: int = 16,
    ) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"DynaST needs an image side divisible by 16, got {image_size}")
        self.n_layers, self.top_k, self.smooth = n_layers, top_k, smooth
        mult = {level: min(max_multi, FACTOR[level]) for level in LEVELS}
        width = {level: ngf * mult[level] for level in LEVELS}
        self.encoder_q = FeatureEncoder(semantic_nc, [width[1], width[2], width[3], width[4]])
        self.encoder_kv = FeatureEncoder(semantic_nc + 3, [width[1], width[2], width[3], width[4]])
        self.pos_embed = nn.Parameter(torch.randn(1, pos_dim * mult[4], image_size // 8, image_size // 8))
        for level in LEVELS:
            self.add_module(f"embed_q{level}", SPADEResBlock(width[level], semantic_nc))
            self.add_module(f"embed_kv{level}", SPADEResBlock(width[level], semantic_nc + 3))
            blocks = [
                AttentionBlock(
                    (ngf + pos_dim) * mult[level],
                    width[level],
                    prune_dim * mult[level],
                    semantic_nc,
                    "dense" if level == 4 else ("inter" if i == 0 else "inner"),
                )
                for i in range(n_layers)
            ]
            self.add_module(f"transformer_{level}", nn.ModuleList(blocks))
            if level < 4:
                self.add_module(f"embed_{level}", SPADEResBlock(width[level], semantic_nc))
            if level > 1:
                finer = level - 1
                for part in ("decoder_", "decoder_q", "decoder_kv"):
                    self.add_module(f"{part}{level}{finer}", _up(width[level], width[finer], nn.ReLU()))
                pos_in, pos_out = pos_dim * mult[level], pos_dim * mult[finer]
                self.add_module(f"pos_{level}{finer}", _up(pos_in, pos_out, nn.LeakyReLU()))
        self.decoder_10 = nn.Sequential(reflect_conv(width[1], 3), nn.Tanh())

    def forward(
        self,
        semantics: Tensor,
        exemplar: Tensor,
        exemplar_semantics: Tensor,
        warps: bool = False,
        warp_source: Tensor | None = None,
    ) -> dict[str, Tensor | list[Tensor]]:
        """``warps``: also the training warps, ``n_layers`` a level: ``warp_source`` (default the exemplar; any
        exemplar-aligned B×C×H×W map) average-pooled to the level and warped by each block's correlation."""
        source = exemplar if warp_source is None else warp_source
        ref_input = torch.cat((exemplar, exemplar_semantics), dim=1)
        q_skip = self.encoder_q(semantics)
        kv_skip = self.encoder_kv(ref_input)
        warp_list: list[Tensor] = []
        pos, matches, x, q, kv = self.pos_embed, None, None, None, None
        for depth, level in enumerate(LEVELS):
            if level == 4:
                q = self.embed_q4(q_skip[0], semantics)
                kv = self.embed_kv4(kv_skip[0], ref_input)
            else:
                coarser = level + 1
                x = getattr(self, f"decoder_{coarser}{level}")(x)
                q = getattr(self, f"embed_q{level}")(
                    getattr(self, f"decoder_q{coarser}{level}")(q) + q_skip[depth], semantics
                )
                kv = getattr(self, f"embed_kv{level}")(
                    getattr(self, f"decoder_kv{coarser}{level}")(kv) + kv_skip[depth], ref_input
                )
                pos = getattr(self, f"pos_{coarser}{level}")(pos)
            factor = FACTOR[level]
            pooled = None
            if warps:
                pooled = source if factor == 1 else F.avg_pool2d(source, factor, stride=factor)
            h = q
            for i, block in enumerate(getattr(self, f"transformer_{level}")):
                last = level == 1 and i == self.n_layers - 1
                smooth = None if level == 4 else self.smooth
                h, warp, matches = block(h, kv, pos, semantics, matches, smooth, pooled, need_index=not last)
                if warps:
                    warp_list.append(warp)
            if level == 4:
                matches = torch.topk(matches, k=self.top_k, dim=-1)[1]
                x = h
            else:  # the released code fuses the finest level with embed_q1 (embed_1 is unused)
                fuse = self.embed_q1 if level == 1 else getattr(self, f"embed_{level}")
                x = fuse(x + h, semantics)
        return {"fake": self.decoder_10(x), "warps": warp_list}
