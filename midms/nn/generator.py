"""SPADE's generator, shared by the SPADE and CoCosNet baselines (one copy).

Park, Liu, Wang and Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019,
https://github.com/NVlabs/SPADE (``SPADEGenerator`` in ``models/networks/generator.py``, ``--num_upsampling_layers
normal``); CoCosNet (Zhang et al., CVPR 2020, https://github.com/microsoft/CoCosNet) uses the same trunk with its
warped exemplar in the conditioning map, PONO and attention. Written from what the released codes compute.

The start is a 16·ngf-channel grid at 1/32 of the image (CoCosNet v2's: 8·ngf, the ``widths`` argument): either a
3×3 convolution of the conditioning map resized to it (nearest), or, with ``z_dim`` (SPADE's ``--use_vae``), a linear
layer from a style code ``z``. Seven SPADE residual blocks with five nearest 2× up-samplings (optional non-local
attention before the 4·ngf→2·ngf block) return a B×3×H×W image in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.errors import UserError
from midms.nn.blocks import SelfAttention, SPADEResBlock

NUM_UP = 5  # the start resolution is H / 2**NUM_UP
WIDTHS = (16, 16, 16, 16, 8, 4, 2, 1)  # in units of ngf: head, middle ×2, up_0 .. up_3


def require_image_size(model: str, size: int) -> None:
    """A model built on this generator stops at construction, with the fix, on sizes it cannot produce."""
    if size < 64 or size % 2**NUM_UP:
        raise UserError(
            f"model={model} needs square images of at least 64 px and a multiple of 32 (its generator starts "
            f"from a 1/32 grid of at least 2×2), but the dataset gives {size} px. Set dataset.image_size to 64, "
            f"96, 128, ... or 256 (the papers' size)."
        )


class SPADEGenerator(nn.Module):
    """``forward(cond, z=None) -> B×3×H×W`` in [-1, 1]; H must be a multiple of 32 and at least 64.

    Args:
        cond_channels: channels of the conditioning map of every SPADE layer.
        ngf, spade_hidden: widths (SPADE and CoCosNet: 64, 128).
        norm, padding: of the SPADE blocks (:class:`~midms.nn.blocks.SPADE`).
        use_attention: non-local attention at H/2 (CoCosNet's ``--use_attention``).
        z_dim: start from a linear layer of a z_dim style code (SPADE's VAE); needs ``image_size``.
        image_size: the output size; fixes the start grid of the linear start.
        widths: the blocks' widths in units of ngf (SPADE and CoCosNet: 16, 16, 16, 16, 8, 4, 2, 1; CoCosNet v2 starts
            at 8).
        pono_eps: PONO's epsilon (CoCosNet's 1e-5, CoCosNet v2's 1e-8).
    """

    def __init__(
        self,
        cond_channels: int,
        ngf: int = 64,
        spade_hidden: int = 128,
        norm: str = "pono",
        padding: str = "reflect",
        use_attention: bool = False,
        z_dim: int | None = None,
        image_size: int | None = None,
        widths: tuple[int, ...] = WIDTHS,
        pono_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.start_width = start = widths[0] * ngf

        def block(i: int) -> SPADEResBlock:
            cin, cout = widths[i] * ngf, widths[i + 1] * ngf
            return SPADEResBlock(cin, cout, cond_channels, spade_hidden, norm, padding, pono_eps)

        if z_dim:
            if not image_size:
                raise ValueError("a generator with a style code (z_dim) needs its image_size")
            self.start = self._start_size(image_size, image_size)
            self.fc: nn.Module = nn.Linear(z_dim, start * self.start[0] * self.start[1])
        else:
            self.fc = nn.Conv2d(cond_channels, start, 3, padding=1)
        self.head = block(0)
        self.middle = nn.ModuleList([block(1), block(2)])
        self.up_0, self.up_1, self.up_2, self.up_3 = block(3), block(4), block(5), block(6)
        self.attention = SelfAttention(widths[5] * ngf, spectral=True) if use_attention else nn.Identity()
        self.to_rgb = nn.Conv2d(ngf, 3, 3, padding=1)

    @staticmethod
    def _start_size(h: int, w: int) -> tuple[int, int]:
        size = (h // 2**NUM_UP, w // 2**NUM_UP)
        if min(size) < 2 or h % 2**NUM_UP or w % 2**NUM_UP:
            raise ValueError(f"the generator needs images of at least 64 px, a multiple of 32 (start {size} at 1/32)")
        return size

    def forward(self, cond: Tensor, z: Tensor | None = None) -> Tensor:
        size = self._start_size(*cond.shape[2:])
        if self.z_dim:
            if z is None:
                raise ValueError("this generator starts from a style code: pass z (B×z_dim)")
            if size != self.start:
                raise ValueError(f"built for {self.start} at 1/32, got a {tuple(cond.shape[2:])} conditioning map")
            x = self.fc(z).view(-1, self.start_width, *size)
        else:
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
