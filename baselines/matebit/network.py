"""MATEBIT's CelebA-HQ generator: DynaST's matching at 1/8 with ConvNeXt-style refinement, a feature memory, and a
U-Net decoder modulated by the exemplar's style code.

Jiang, Gao, Hou, ..., "Masked and Adaptive Transformer for Exemplar Based Image Translation", CVPR 2023;
https://github.com/AiArt-Gao/MATEBIT, ``models/networks/generator_celebahqedge.py`` (the CelebA-HQ edge model),
``architecture.py``, ``dynast_transformer.py``, ``modules.py``. What each part computes follows that code:

- two pyramid encoders (DynaST's, with InstanceNorm residual blocks): the input semantics, and the exemplar with
  its semantics; every level L2-normalised;
- the exemplar's 1/8 features after a SPADE residual block, plus their read-out from a **memory** of ``slots``
  vectors: each position a softmax (over the slots, temperature ``tau`` 0.05) of the slots' similarity to the
  normalised feature, averaged over the slots (:class:`FeatureMemory`);
- ``n_layers`` masked adaptive transformer blocks at 1/8 (:class:`MATBlock`): DynaST's dense dynamic attention and
  confidence fusion, then an adaptive ConvNeXt block (7×7 depthwise conv, coordinate attention, LayerNorm, a 4×
  MLP with GELU, a layer-scale ``gamma``) in place of DynaST's residual block;
- a style code: a mapping MLP of the exemplar's pooled memory-augmented features (:class:`MappingNetwork`), which
  modulates the decoder's AdaIN residual blocks;
- the decoder: down to 1/16 and back, concatenating the matched 1/8 features and the input's normalised 1/4 and 1/2
  encoder levels, SAGAN self-attention at 1/4 (``use_attention``), then a residual block, a 3×3 conv and tanh.

Kept as released and documented: every SPADE layer builds a coordinate attention (``coord``) that its forward never
calls; each adaptive block builds a ``fast_path`` it never calls in the released forward (no mask); the memory's
update (an exponential moving average of the best-matching features, ``alpha`` 0.999) runs inside its backward pass,
and that backward returns the normalised features themselves as their gradient (:class:`_MemoryReadout`). The
official forward reshapes the memory's input with sizes written into the code (512 channels, 32×32 positions, the
configured batch size, so a smaller last batch fails there); here they are the features' own, which at the released
size and batch is the same computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from midms.baselines.dynast.network import (
    L2_EPS,
    AttentionBlock,
    FeatureEncoder,
    SPADEResBlock,
    dynast_spade,
)
from torch import Tensor, nn

from midms.nn.blocks import ResidualBlock, SelfAttention, l2_normalize, sn_conv_instance


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021) as MATEBIT's ``CoordAtt``: pooled rows and columns through a shared
    1×1 conv, affine BatchNorm and h-swish, then two sigmoid gates that rescale the input."""

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv_h = nn.Conv2d(hidden, channels, 1)
        self.conv_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        rows = F.adaptive_avg_pool2d(x, (None, 1))
        cols = F.adaptive_avg_pool2d(x, (1, None)).permute(0, 1, 3, 2)
        y = self.bn1(self.conv1(torch.cat([rows, cols], dim=2)))
        y = y * (F.relu6(y + 3) / 6)  # h-swish
        rows, cols = torch.split(y, [h, w], dim=2)
        gate_h = self.conv_h(rows).sigmoid()
        gate_w = self.conv_w(cols.permute(0, 1, 3, 2)).sigmoid()
        return x * gate_w * gate_h


def matebit_spade(channels: int, cond_channels: int) -> nn.Module:
    """DynaST's SPADE with MATEBIT's unused ``coord`` (a coordinate attention the released file holds)."""
    spade = dynast_spade(channels, cond_channels)
    spade.coord = CoordinateAttention(channels)
    return spade


class AdaptiveBlock(nn.Module):
    """MATEBIT's ``AdaBlock`` without a mask: ``x + gamma · MLP(LayerNorm(CoordAtt(dwconv7(x))))`` per position."""

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))
        # the masked (training-time token-split) path of the released block: built, never called without a mask
        self.fast_path = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, dim))
        self.fast_path_gamma = nn.Parameter(layer_scale * torch.ones(dim))
        self.coordatten = CoordinateAttention(dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.coordatten(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class MATBlock(AttentionBlock):
    """MATEBIT's ``DynamicTransformerBlock``: DynaST's dense block whose residual block is an :class:`AdaptiveBlock`."""

    def __init__(self, qk_channels: int, v_channels: int, prune_channels: int, cond_channels: int) -> None:
        super().__init__(qk_channels, v_channels, prune_channels, cond_channels, "dense", spade=matebit_spade)
        del self.res_block
        self.adablock = AdaptiveBlock(v_channels)

    def refine(self, fused: Tensor) -> Tensor:
        return self.adablock(fused)


class _MemoryReadout(torch.autograd.Function):
    """The released ``MemoryFunction``: forward reads the memory out; backward updates it in place (for each sample
    in turn, every slot moves towards the feature it matches best: ``m ← α m + (1 - α) x``) and returns the
    normalised features themselves as their gradient (the memory, α and τ take none)."""

    @staticmethod
    def forward(ctx, x: Tensor, memory: Tensor, alpha: Tensor, tau: Tensor) -> Tensor:
        sim = torch.matmul(memory, x) / tau  # B×slots×HW
        ctx.save_for_backward(x, memory, torch.argmax(sim, dim=2), alpha)
        weights = torch.softmax(sim, dim=1)
        return torch.matmul(weights.permute(0, 2, 1), memory).permute(0, 2, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, memory, best, alpha = ctx.saved_tensors
        with torch.no_grad():
            for i in range(best.shape[0]):
                memory.copy_(memory * alpha + (1.0 - alpha) * x[i][:, best[i]].T)
        return x, None, None, None


class FeatureMemory(nn.Module):
    """MATEBIT's ``MemoryNetwork``: ``slots`` vectors of the 1/8 feature width, α 0.999, τ 0.05 (not trained by
    the optimiser; the file holds them as parameters)."""

    def __init__(self, dim: int, slots: int = 1024) -> None:
        super().__init__()
        self.latent_embedding = nn.Parameter(torch.randn(slots, dim), requires_grad=False)
        self.alpha = nn.Parameter(torch.full((1,), 0.999), requires_grad=False)
        self.tau = nn.Parameter(torch.full((1,), 0.05), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        unit = F.normalize(x.reshape(b, c, h * w), dim=1)
        return _MemoryReadout.apply(unit, self.latent_embedding, self.alpha, self.tau).reshape(b, c, h, w)


class MappingNetwork(nn.Module):
    """The style code: the pooled features through Linear-LeakyReLU(0.2)-Linear-LeakyReLU-Linear, Kaiming-initialised
    for leaky ReLU with the last layer scaled by 0.25 (``architecture.py`` ``MappingNetwork``)."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, out),
        )
        for layer in self.network:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
        with torch.no_grad():
            self.network[-1].weight *= 0.25

    def forward(self, features: Tensor) -> Tensor:
        return self.network(F.adaptive_avg_pool2d(features, 1).flatten(1))


def adain(x: Tensor, mean: Tensor, scale: Tensor, eps: float = 1e-5) -> Tensor:
    """MATEBIT's ``AdaIN``: instance statistics (variance as E[x²] - E[x]², clamped at 0), then ``· scale + mean``."""
    b, c = x.shape[:2]
    flat = x.view(b, c, -1)
    mu = flat.mean(dim=2).view(b, c, 1, 1)
    var = torch.clamp((flat * flat).mean(dim=2).view(b, c, 1, 1) - mu * mu, min=0)
    return (x - mu) * torch.rsqrt(var + eps) * scale + mean


class AdaINResBlock(nn.Module):
    """``AdainRestBlocks``: ``x + AdaIN(conv(relu(AdaIN(conv(x)))))`` with reflection padding and bias-free convs, the
    AdaIN scale and shift from a linear map of the style code (init ×0.25, zero bias)."""

    def __init__(self, dim: int, style_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.conv1 = nn.Conv2d(dim, dim, 3, bias=False)
        self.conv2 = nn.Conv2d(dim, dim, 3, bias=False)
        self.styleModulator = nn.Linear(style_dim, 2 * dim)  # noqa: N815 (the released name)
        with torch.no_grad():
            self.styleModulator.weight *= 0.25
            self.styleModulator.bias.zero_()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        b = x.shape[0]
        modulation = self.styleModulator(style)
        scale = modulation[:, : self.dim].view(b, self.dim, 1, 1)
        mean = modulation[:, self.dim :].view(b, self.dim, 1, 1)
        out = adain(self.conv1(F.pad(x, [1, 1, 1, 1], mode="reflect")), mean, scale)
        out = adain(self.conv2(F.pad(F.relu(out), [1, 1, 1, 1], mode="reflect")), mean, scale)
        return out + x


def _conv_residual(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """``spectralinstance`` 3×3 conv (zero padding, no bias) then an InstanceNorm residual block."""
    return nn.Sequential(sn_conv_instance(cin, cout, 3, stride=stride, padding=1), ResidualBlock(cout))


class MATEBITGenerator(nn.Module):
    """``forward(semantics, exemplar, exemplar_semantics, warps=False, attention=True) -> {"fake", "warps",
    "seg_features"}``.

    Args:
        semantic_nc: input channels (CelebA-HQ edges: 15).
        image_size: the square side, a multiple of 16 (the positional embedding is side/8).
        ngf, max_multi, n_layers, pos_dim, prune_dim: as DynaST's (the released CelebA-HQ model: 64, 8, 3, 16, 16).
        memory_slots: the memory's size (1024).
    """

    def __init__(
        self,
        semantic_nc: int,
        image_size: int,
        ngf: int = 64,
        max_multi: int = 8,
        n_layers: int = 3,
        pos_dim: int = 16,
        prune_dim: int = 16,
        memory_slots: int = 1024,
    ) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"MATEBIT needs an image side divisible by 16, got {image_size}")
        widths = [ngf * min(max_multi, m) for m in (1, 2, 4, 8)]
        deep = widths[3]
        self.encoder_q = FeatureEncoder(semantic_nc, widths, residual_norm="instance")
        self.encoder_kv = FeatureEncoder(semantic_nc + 3, widths, residual_norm="instance")
        self.pos_embed = nn.Parameter(torch.randn(1, pos_dim * min(max_multi, 8), image_size // 8, image_size // 8))
        self.embed_q4 = SPADEResBlock(deep, semantic_nc, spade=matebit_spade)
        self.embed_kv4 = SPADEResBlock(deep, semantic_nc + 3, spade=matebit_spade)
        self.memory = FeatureMemory(deep, memory_slots)
        mult = min(max_multi, 8)
        self.transformer_4 = nn.ModuleList(
            [MATBlock((ngf + pos_dim) * mult, deep, prune_dim * mult, semantic_nc) for _ in range(n_layers)]
        )
        self.mapping = MappingNetwork(deep, ngf * 4, ngf)
        self.layer5 = _conv_residual(ngf * 8, ngf * 8, stride=2)
        self.bottleneck = _conv_residual(ngf * 8, ngf * 8)
        self.final = nn.Conv2d(ngf, 3, 3, padding=1)
        self.adain1 = AdaINResBlock(ngf * 8, ngf)
        self.adain2 = AdaINResBlock(ngf * 4, ngf)
        self.adain3 = AdaINResBlock(ngf * 2, ngf)
        self.adain4 = AdaINResBlock(ngf, ngf)
        self.style1 = _conv_residual(ngf * 16, ngf * 8)
        self.style2 = _conv_residual(ngf * 16, ngf * 4)
        self.style3 = _conv_residual(ngf * 8, ngf * 2)
        self.attn = SelfAttention(ngf * 2, spectral=True)
        self.style4 = _conv_residual(ngf * 4, ngf)
        self.res_block = ResidualBlock(ngf)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    def forward(
        self,
        semantics: Tensor,
        exemplar: Tensor,
        exemplar_semantics: Tensor,
        warps: bool = False,
        attention: bool = True,
        warp_source: Tensor | None = None,
    ) -> dict:
        """``warps``: the training warps (``warp_source``, default the exemplar, pooled to 1/8 and warped by each
        block); ``attention``: the decoder's self-attention (the released training command's ``--use_atten``; its
        test command leaves it out)."""
        ref_input = torch.cat((exemplar, exemplar_semantics), dim=1)
        seg = [l2_normalize(f, L2_EPS) for f in self.encoder_q(semantics)]
        ref = [l2_normalize(f, L2_EPS) for f in self.encoder_kv(ref_input)]
        q4 = self.embed_q4(seg[0], semantics)
        ref_before = self.embed_kv4(ref[0], ref_input)
        ref_feature = self.memory(ref_before) + ref_before
        source = exemplar if warp_source is None else warp_source
        pooled = F.avg_pool2d(source, 8, stride=8) if warps else None
        x4, warp_list = q4, []
        for block in self.transformer_4:
            x4, warp, _ = block(x4, ref_feature, self.pos_embed, semantics, None, None, pooled)
            if warps:
                warp_list.append(warp)
        style = self.mapping(ref_feature)
        x5 = self.layer5(F.leaky_relu(x4, 0.2))
        bottleneck = self.bottleneck(F.leaky_relu(x5, 0.2))
        out = self.adain1(self.style1(torch.cat((bottleneck, x5), dim=1)), style)
        out = self.adain2(self.style2(torch.cat((self._up(out), x4), dim=1)), style)
        out = self.adain3(self.style3(torch.cat((self._up(out), seg[1]), dim=1)), style)
        if attention:
            out = self.attn(out)
        out = self.adain4(self.style4(torch.cat((self._up(out), seg[2]), dim=1)), style)
        x = self.res_block(F.leaky_relu(self._up(out), 0.2))
        return {"fake": torch.tanh(self.final(x)), "warps": warp_list, "seg_features": seg}
