"""CoCosNet v2's generator: SPADE's trunk at 8·ngf, conditioned on the four warps and the input.

https://github.com/microsoft/CoCosNet-v2, ``models/networks/generator.py``: the warps at 1/8, 1/4 and 1/2 resized to
the image (nearest; the official code writes 512 here), the full-resolution warp and the input semantics make the
conditioning map (4·3 + semantic channels) of every SPADE block (PONO eps 1e-8, hidden 128, reflection padding);
the blocks are 8, 8, 8, 8, 8, 4, 2, 1 × ngf wide, without attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from midms.baselines.cocosnet_v2.correspondence import PONO_EPS
from torch import Tensor, nn

from midms.nn.generator import SPADEGenerator

WIDTHS = (8, 8, 8, 8, 8, 4, 2, 1)


class GeneratorV2(nn.Module):
    def __init__(self, semantic_nc: int, ngf: int = 64, spade_hidden: int = 128) -> None:
        super().__init__()
        cond = 4 * 3 + semantic_nc
        self.trunk = SPADEGenerator(cond, ngf, spade_hidden, "pono", "reflect", widths=WIDTHS, pono_eps=PONO_EPS)

    def forward(self, semantics: Tensor, warps: list[Tensor]) -> Tensor:
        size = warps[3].shape[-2:]
        cond = torch.cat([*(F.interpolate(w, size=size) for w in warps[:3]), warps[3], semantics], dim=1)
        return self.trunk(cond)
