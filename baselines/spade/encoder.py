"""SPADE's style encoder (``--use_vae``): an image to the mean and log-variance of a style code.

Park et al., "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019,
https://github.com/NVlabs/SPADE (``ConvEncoder`` in ``models/networks/encoder.py``, ``--norm_E spectralinstance``).
The image is resized (bilinear) to ``input_size``; 3×3 stride-2 convolutions, each spectrally normalised without
bias and followed by a parameter-free InstanceNorm, with LeakyReLU(0.2) between them, bring it to a 4×4 grid of
8·ndf channels; two linear layers give ``mu`` and ``logvar`` (``z_dim``). The encoder's width is the generator's
``ngf``, as in the released code.

The released encoder always resizes to 256 px and runs six layers (five below a 256-px crop, which leaves an 8×8
grid its linear layers do not fit: it only runs at 256). Here the number of layers follows ``input_size`` so that
the grid is 4×4 at any size: six at 256 (the released network), four at the tiny size's 64.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from midms.nn.blocks import sn_conv_instance

GRID = 4  # the released encoder's s0: the last feature map is GRID×GRID
WIDTHS = (1, 2, 4, 8, 8, 8)  # in units of ndf, layer by layer (the released layer1 .. layer6)


class StyleEncoder(nn.Module):
    """``forward(image in [-1, 1]) -> (mu, logvar)``, each B×z_dim."""

    def __init__(self, ndf: int = 64, z_dim: int = 256, input_size: int = 256) -> None:
        super().__init__()
        n_layers = math.log2(input_size / GRID)
        if n_layers != int(n_layers) or not 1 <= n_layers <= len(WIDTHS):
            raise ValueError(f"the style encoder's input_size must be 4·2^k px, 8 to 256, got {input_size}")
        self.input_size = input_size
        widths = [3] + [w * ndf for w in WIDTHS[: int(n_layers)]]
        self.convs = nn.ModuleList(
            [sn_conv_instance(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(widths, widths[1:], strict=False)]
        )
        self.fc_mu = nn.Linear(widths[-1] * GRID * GRID, z_dim)
        self.fc_var = nn.Linear(widths[-1] * GRID * GRID, z_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = image
        if tuple(x.shape[2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        for i, conv in enumerate(self.convs):
            x = conv(F.leaky_relu(x, 0.2) if i else x)
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)
