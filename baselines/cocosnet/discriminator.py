"""CoCosNet's discriminator: pix2pixHD's multi-scale PatchGAN with spectral-instance norm and attention.

Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet (``MultiscaleDiscriminator`` / ``NLayerDiscriminator`` in
``models/networks/discriminator.py``; ``--num_D 2 --n_layers_D 4 --norm_D spectralinstance --use_attention``).
Each scale sees ``cat(semantics, image)``; the second scale sees it 2× average-pooled.

The released code also builds a decoder (``dec``, about 0.39M parameters per scale at ndf 64) in each
scale that its forward pass never calls; it is left out here, so the two-scale count is 5.7M, not 6.5M.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from baselines.cocosnet.blocks import SelfAttention
from midms.nn.blocks import sn_conv_instance


class PatchDiscriminator(nn.Module):
    """``forward(x) -> [feature maps..., patch logits]`` (``n_layers`` + 1 maps; the last is B×1×h×w)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, use_attention: bool = True) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2))]
        nf = ndf
        self.attention: nn.Module = nn.Identity()
        self.attention_at = n_layers - 1  # before the last stride-1 layer
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            if n == n_layers - 1 and use_attention:
                self.attention = SelfAttention(prev, spectral=True)
            stride = 1 if n == n_layers - 1 else 2
            layers.append(nn.Sequential(sn_conv_instance(prev, nf, 4, stride=stride), nn.LeakyReLU(0.2)))
        layers.append(nn.Conv2d(nf, 1, 4, stride=1, padding=1))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for i, layer in enumerate(self.layers):
            if i == self.attention_at:
                x = self.attention(x)
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` patch discriminators on 1, 1/2, ... resolution: ``forward(x) -> [[maps of scale k]...]``."""

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2, use_attention: bool = True
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            [PatchDiscriminator(in_channels, ndf, n_layers, use_attention) for _ in range(num_d)]
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(d(x))
        return results
