"""CoCosNet's translation network: a SPADE generator whose modulation is the warped exemplar and the semantics.

Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet (``SPADEGenerator`` in ``models/networks/generator.py`` with
``--CBN_intype warp_mask --PONO --use_attention``). The conditioning map is ``cat(warp, semantics)``
(B×(3+S)×H×W); it is resized to H/32 and convolved to the 16·ngf-channel start, then seven SPADE residual
blocks with five nearest 2× up-samplings (non-local attention before the 4·ngf→2·ngf block) return the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.cocosnet.blocks import SelfAttention
from midms.nn.blocks import SPADEResBlock

NUM_UP = 5  # the start resolution is H / 2**NUM_UP


class SPADEGenerator(nn.Module):
    """``forward(warp, semantics) -> B×3×H×W`` in [-1, 1]; H must be a multiple of 32 and at least 64."""

    def __init__(
        self,
        semantic_nc: int,
        ngf: int = 64,
        spade_hidden: int = 128,
        pono: bool = True,
        use_attention: bool = True,
    ) -> None:
        super().__init__()
        cond = 3 + semantic_nc
        widths = [16, 16, 16, 16, 8, 4, 2, 1]  # in units of ngf: head, middle ×2, up_0 .. up_3

        def block(i: int) -> SPADEResBlock:
            return SPADEResBlock(widths[i] * ngf, widths[i + 1] * ngf, cond, spade_hidden, pono)

        self.fc = nn.Conv2d(cond, 16 * ngf, 3, padding=1)
        self.head = block(0)
        self.middle = nn.ModuleList([block(1), block(2)])
        self.up_0, self.up_1, self.up_2, self.up_3 = block(3), block(4), block(5), block(6)
        self.attention = SelfAttention(4 * ngf, spectral=True) if use_attention else nn.Identity()
        self.to_rgb = nn.Conv2d(ngf, 3, 3, padding=1)

    def forward(self, warp: Tensor, semantics: Tensor) -> Tensor:
        cond = torch.cat([warp, semantics], dim=1)  # B×(3+S)×H×W
        size = (cond.shape[2] // 2**NUM_UP, cond.shape[3] // 2**NUM_UP)
        if min(size) < 2:
            raise ValueError(f"the generator needs images of at least 64 px (start {size} at 1/32), got {cond.shape}")
        x = self.fc(F.interpolate(cond, size=size, mode="nearest"))  # B×16ngf×H/32×W/32
        x = self.head(x, cond)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # H/16
        for block in self.middle:
            x = block(x, cond)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), cond)  # H/8, 8ngf
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), cond)  # H/4, 4ngf
        x = self.attention(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # H/2
        x = self.up_2(x, cond)  # 2ngf
        x = self.up_3(F.interpolate(x, scale_factor=2.0, mode="nearest"), cond)  # H, ngf
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
