"""The encoders whose features MIDMs matches (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs,
``models/midms.py`` and ``models/generator.py``), re-implemented; the matching itself is
:mod:`midms.models.midms.matching`.

- ``seg_enc`` (semantic encoder): input semantics at latent resolution -> features;
- ``real_enc`` (real-image encoder): exemplar / source latents -> features;
- ``iter_enc`` (iteration encoder): the current x0 prediction, modulated by the input's features;
- a shared trunk of residual blocks on ``[features, semantics]``, then 1×1 projections ``theta`` (input side)
  and ``phi`` (image side).

Each encoder is three spectrally normalised 3×3 convolutions with instance norm (widths w, 4w, 8w) and a
SPADE residual block (positional normalisation, modulation from a conditioning map) down to ``channels``.
Paper sizes: w = 64, channels = 256, SPADE hidden width 128, four trunk blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.models.midms.matching import matching_features
from midms.nn.blocks import ResidualBlock, SPADEResBlock, sn_conv_instance


class ShallowEncoder(nn.Module):
    """Three conv layers (w, 4w, 8w; full resolution) and a SPADE block to ``channels``.

    The SPADE condition is ``cond`` when given (the iteration encoder: the input's features), else the input.
    """

    def __init__(self, in_channels: int, channels: int, cond_channels: int, width: int = 64, hidden: int = 128):
        super().__init__()
        self.layer1 = sn_conv_instance(in_channels, width, 3)
        self.layer2 = sn_conv_instance(width, 4 * width, 3)
        self.layer3 = sn_conv_instance(4 * width, 8 * width, 3)
        self.block = SPADEResBlock(8 * width, channels, cond_channels, hidden)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = self.layer1(x)
        h = self.layer2(F.leaky_relu(h, 0.2))
        h = self.layer3(F.leaky_relu(h, 0.2))
        return self.block(h, x if cond is None else cond)


class MatchingNetwork(nn.Module):
    """All learned parts of the matching: encoders, trunk and projections.

    Args:
        semantic_nc: channels of the input semantics (1 for edges, K for one-hot labels, 15 for CelebA-HQ).
        latent_channels: channels of the autoencoder latents (3 for VQ-f4, 4 for KL-f8).
        channels: matching feature width (paper: 256).
        width: encoder base width (paper: 64).
        hidden: SPADE hidden width (paper: 128).
        trunk_blocks: residual blocks of the shared trunk (paper: 4).
        concat_semantics: concatenate the semantics to the trunk input (the official ``maskmix``, on).
    """

    def __init__(
        self,
        semantic_nc: int,
        latent_channels: int = 3,
        channels: int = 256,
        width: int = 64,
        hidden: int = 128,
        trunk_blocks: int = 4,
        concat_semantics: bool = True,
    ) -> None:
        super().__init__()
        self.concat_semantics = concat_semantics
        nc = semantic_nc if concat_semantics else 0
        self.seg_enc = ShallowEncoder(semantic_nc, channels, semantic_nc, width, hidden)
        self.real_enc = ShallowEncoder(latent_channels, channels, latent_channels, width, hidden)
        self.iter_enc = ShallowEncoder(latent_channels, channels, channels, width, hidden)
        self.trunk = nn.Sequential(*[ResidualBlock(channels + nc) for _ in range(trunk_blocks)])
        self.theta = nn.Conv2d(channels + nc, channels, 1)
        self.phi = nn.Conv2d(channels + nc, channels, 1)

    def _project(self, feats: Tensor, semantics: Tensor, proj: nn.Conv2d) -> Tensor:
        h = torch.cat([feats, semantics], dim=1) if self.concat_semantics else feats
        return matching_features(proj(self.trunk(h)))

    def input_features(self, semantics: Tensor) -> tuple[Tensor, Tensor]:
        """Semantics B×S×h×w (latent resolution) -> (encoder features, normalised matching features)."""
        enc = self.seg_enc(semantics)
        return enc, self._project(enc, semantics, self.theta)

    def image_features(self, latents: Tensor, semantics: Tensor) -> tuple[Tensor, Tensor]:
        """Latents B×c×h×w and their semantics -> (encoder features, normalised matching features)."""
        enc = self.real_enc(latents)
        return enc, self._project(enc, semantics, self.phi)

    def iteration_features(self, x0: Tensor, input_enc: Tensor) -> Tensor:
        """The current x0 prediction, modulated by the input's encoder features -> normalised features."""
        return matching_features(self.iter_enc(x0, input_enc))
