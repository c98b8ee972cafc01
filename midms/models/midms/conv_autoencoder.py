"""A plain convolutional autoencoder: the first stage of the ``tiny`` prior (``model.sizes.tiny.prior.kind=ae``).

The LDM first stages (VQ-f4, KL-f8; Rombach et al., CVPR 2022) are deep GroupNorm networks trained for
hundreds of thousands of steps. Built at CPU widths and trained for a few hundred steps on the synthetic
images they stay blurry (diffusers' ``VQModel`` at widths 8/16/16: 15.4 dB after 300 steps of batch 16,
18.6 dB after 600; ``AutoencoderTiny`` at width 32: 17.2 dB after 300), and a prior that cannot reconstruct
the images caps every MIDMs output. This network keeps the first stage's interface and downsampling
(``f = 2^(levels - 1)``, ``latent_channels`` channels, deterministic latents) with the fewest layers: one
3×3 convolution per level, strided 4×4 convolutions down, nearest upsampling and 3×3 convolutions up, SiLU,
no normalisation (which would remove each image's absolute colours at these widths). At widths 32/32/32 it
reaches 23.9 dB in the same 300 steps, at the same cost per step.

It is a diffusers ``ModelMixin``/``ConfigMixin``, so ``config.block_out_channels``, ``save_pretrained`` and
``from_pretrained`` work as for the LDM autoencoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import Tensor, nn


@dataclass
class EncoderOutput(BaseOutput):
    latents: Tensor


class ConvAutoencoder(ModelMixin, ConfigMixin):
    """Images B×in×H×W in [-1, 1] -> latents B×latent_channels×H/f×W/f -> images; f = 2^(len(widths) - 1)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: Sequence[int] = (32, 32, 32),
        latent_channels: int = 3,
    ) -> None:
        super().__init__()
        widths = list(block_out_channels)
        down: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.SiLU()]
        for prev, width in zip(widths, widths[1:], strict=False):
            down += [nn.Conv2d(prev, width, 4, stride=2, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(widths[-1], latent_channels, 3, padding=1))
        rev = widths[::-1]
        up: list[nn.Module] = [nn.Conv2d(latent_channels, rev[0], 3, padding=1), nn.SiLU()]
        for prev, width in zip(rev, rev[1:], strict=False):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, width, 3, padding=1), nn.SiLU()]
        self.decoder = nn.Sequential(*up, nn.Conv2d(rev[-1], out_channels, 3, padding=1))

    def encode(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(latents=self.encoder(x))

    def decode(self, z: Tensor) -> DecoderOutput:
        return DecoderOutput(sample=self.decoder(z))
