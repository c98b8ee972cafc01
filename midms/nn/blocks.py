"""Small network blocks shared by MIDMs and the CoCosNet baseline."""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """Reflection-padded 3×3 conv, InstanceNorm, PReLU, conv, InstanceNorm, plus the input, then the PReLU.

    The residual unit of the matching trunks of CoCosNet (Zhang et al., CVPR 2020, microsoft/CoCosNet,
    ``models/networks/correspondence.py``) and MIDMs (Seo et al., AAAI 2023, cvlab-kaist/MIDMs,
    ``models/midms.py``): one PReLU slope is shared by both activations, as in the released code.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.PReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )
        self.act = self.body[3]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + x)
