"""pix2pixHD's multi-scale PatchGAN with spectral-instance norm, shared by the SPADE and CoCosNet baselines.

SPADE (Park et al., CVPR 2019, https://github.com/NVlabs/SPADE) and CoCosNet (Zhang et al., CVPR 2020,
https://github.com/microsoft/CoCosNet) both use ``MultiscaleDiscriminator`` / ``NLayerDiscriminator`` of
``models/networks/discriminator.py`` with ``--num_D 2 --n_layers_D 4 --norm_D spectralinstance``: 4×4 kernels,
stride 2 but for the last hidden layer, each scale on ``cat(semantics, image)`` and the next one on it 3×3
average-pooled with stride 2. The two released codes differ in two places, both options here:

- ``padding``: SPADE pads the 4×4 convolutions by ``ceil(3/2) = 2``; CoCosNet by ``int(3/2) = 1``;
- ``use_attention``: CoCosNet's ``--use_attention`` adds non-local attention before the last stride-1 layer.

CoCosNet's code also builds a decoder (``dec``, about 0.39M parameters per scale at ndf 64) in each scale that its
forward pass never calls; it is left out here, so its two-scale count is 5.7M, not 6.5M.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from midms.nn.blocks import SelfAttention, sn_conv_instance


class PatchDiscriminator(nn.Module):
    """``forward(x) -> [feature maps..., patch logits]`` (``n_layers`` + 1 maps; the last is B×1×h×w)."""

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 4, use_attention: bool = False, padding: int = 2
    ) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=padding), nn.LeakyReLU(0.2))]
        nf = ndf
        self.attention: nn.Module = nn.Identity()
        self.attention_at = n_layers - 1  # before the last stride-1 layer
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            if n == n_layers - 1 and use_attention:
                self.attention = SelfAttention(prev, spectral=True)
            stride = 1 if n == n_layers - 1 else 2
            conv = sn_conv_instance(prev, nf, 4, stride=stride, padding=padding)
            layers.append(nn.Sequential(conv, nn.LeakyReLU(0.2)))
        layers.append(nn.Conv2d(nf, 1, 4, stride=1, padding=padding))
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
    """``num_d`` patch discriminators on 1, 1/2, ... resolution: ``forward(x) -> [[maps of scale k]...]``.

    Defaults are SPADE's (padding 2, no attention); CoCosNet passes ``padding=1, use_attention=True``.
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 4,
        num_d: int = 2,
        use_attention: bool = False,
        padding: int = 2,
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            [PatchDiscriminator(in_channels, ndf, n_layers, use_attention, padding) for _ in range(num_d)]
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(d(x))
        return results
