"""CoCosNet's translation network: a SPADE generator whose modulation is the warped exemplar and the semantics.

Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image Translation", CVPR 2020,
https://github.com/microsoft/CoCosNet (``SPADEGenerator`` in ``models/networks/generator.py`` with
``--CBN_intype warp_mask --PONO --use_attention``). The conditioning map is ``cat(warp, semantics)``
(B×(3+S)×H×W); the trunk is the shared :class:`midms.nn.generator.SPADEGenerator` (reflection padding, PONO,
non-local attention before the 4·ngf→2·ngf block).
"""

from __future__ import annotations

import torch
from torch import Tensor

from midms.nn.generator import SPADEGenerator


class CoCosNetGenerator(SPADEGenerator):
    """``forward(warp, semantics) -> B×3×H×W`` in [-1, 1]; H must be a multiple of 32 and at least 64."""

    def __init__(
        self,
        semantic_nc: int,
        ngf: int = 64,
        spade_hidden: int = 128,
        pono: bool = True,
        use_attention: bool = True,
    ) -> None:
        norm = "pono" if pono else "instance"
        super().__init__(3 + semantic_nc, ngf, spade_hidden, norm=norm, padding="reflect", use_attention=use_attention)

    def forward(self, warp: Tensor, semantics: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(torch.cat([warp, semantics], dim=1))
