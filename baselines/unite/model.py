"""``model=unite``: UNITE as a LightningModule, CoCosNet's training with UNITE's networks and mask term.

Zhan et al., "Unbalanced Feature Transport for Exemplar-based Image Translation", CVPR 2021;
https://github.com/fnzhan/UNITE. ``models/pix2pix_model.py`` there is CoCosNet's with these changes, reproduced:

- the generator reads the correspondence's levels and confidence (``generate_fake``: ``netG(warp_out=...)``);
- ``warp_self`` compares the up-sampled warp (``warp_tmp``) with the ground truth, as CoCosNet's ``warp_out``;
- the mask term: ``if self.opt.dataset_mode == 'ade20klayout' or 'cocolayout'`` is always true (a non-empty string),
  so every run with ``--warp_mask_losstype direct`` takes the L1 between the warped one-hot semantics of the exemplar
  and the input's (both at 1/4, nearest) × 500, and ``--weight_mask`` is never read (:data:`MASK_L1_WEIGHT`);
- the VGG19 sees the image as given unless ``--vgg_normal_correct`` (``vgg_normal_correct``): the ADE20K command does
  not pass it, so its VGG gets [-1, 1] images as if they were [0, 1].

Everything else is CoCosNet's (:class:`~baselines.cocosnet.model.CoCosNet`): the hinge GAN on the two-scale
discriminator (10), its feature matching (10), VGG feature matching (× ``lambda_vgg · fm_ratio``, paired samples), the
perceptual MSE, the contextual loss to the exemplar (× ``lambda_vgg · ctx_w``), the domain alignment
(``novgg_featpair`` 10), the cycle warp; Adam with TTUR (lr/2 and 2·lr, β = (0, 0.9), eps 1e-3 for G), the linear decay.
The released commands train on one GPU (batch 3 for ADE20K), which ``fm_reference_batch`` records.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from midms.baselines.cocosnet.model import DEFAULT_SETTINGS as COCOSNET_SETTINGS
from midms.baselines.cocosnet.model import VGG_LAYERS, CoCosNet
from midms.baselines.unite.correspondence import UniteCorrespondence
from midms.baselines.unite.generator import SEACEGenerator
from torch import Tensor

from midms.errors import UserError

#: ``G_losses['mask'] = F.l1_loss(warp_mask, gt_label) * 500`` (``pix2pix_model.py``, ``compute_generator_loss``)
MASK_L1_WEIGHT = 500.0

#: CoCosNet's settings, less ``mask_ignore_index`` (UNITE's L1 mask term weighs every class), plus its own options
#: (``base_options.py`` defaults); ``warp_patch`` must stay false (its correspondence warps the grid only)
DEFAULT_SETTINGS: dict[str, Any] = {
    **{k: v for k, v in COCOSNET_SETTINGS.items() if k != "mask_ignore_index"},
    "use_coordconv": False,
    "adaptor_nonlocal": False,
    "vgg_normal_correct": False,
}


class Unite(CoCosNet):
    """UNITE (CVPR 2021). Networks: ``corr`` (:class:`UniteCorrespondence`), ``generator`` (:class:`SEACEGenerator`),
    ``discriminator``. Arguments as :class:`CoCosNet` (``temperature``, ``pono`` and ``use_attention`` configure only
    what UNITE shares with it: the discriminator's attention); ``pretrained`` loads the user's download of the
    released model (:mod:`.released`)."""

    model_name = "unite"
    default_settings = DEFAULT_SETTINGS

    def build_networks(self, nc, ngf, match_channels, spade_hidden, temperature, use_attention, pono) -> None:
        s = self.settings
        if s["warp_patch"]:
            raise UserError(
                "model=unite: warp_patch is not an option of UNITE (its correspondence warps the grid only)"
            )
        self.corr = UniteCorrespondence(
            nc,
            ngf=ngf,
            match_channels=match_channels,
            spade_hidden=spade_hidden,
            adaptor_kernel=s["adaptor_kernel"],
            maskmix=s["maskmix"],
            use_coordconv=s["use_coordconv"],
            adaptor_nonlocal=s["adaptor_nonlocal"],
            warp_bilinear=s["warp_bilinear"],
        )
        self.generator = SEACEGenerator(nc, self.data_spec.image_size, ngf=ngf, hidden=spade_hidden)

    def load_released(self, folder: str) -> dict[str, str]:
        from midms.baselines.unite.released import load_released

        return load_released(self.corr, self.generator, folder)

    def forward(self, batch: dict, image: Tensor | None = None, losses: bool = True) -> dict[str, Tensor]:
        """Correspondence then generation; ``image`` and ``losses`` as :meth:`CoCosNet.forward`."""
        s = self.settings
        semantics = batch["semantics"]
        out = self.corr(
            semantics,
            batch["exemplar"],
            batch["exemplar_semantics"],
            image=image,
            cycle=losses and s["warp_cycle_w"] > 0,
            warp_mask=losses and s["warp_mask_losstype"] == "direct",
        )
        levels = [semantics, *out["seg_levels"][:4]]
        out["fake"] = self.generator(levels, [out["warp_low"], *out["warped_levels"]], out["confidence"])
        return out

    matching_key = "plan"

    def matching(self, batch: dict) -> Tensor:
        """The row-normalised transport plan, B×hw×hw."""
        return self.corr.plan(batch["semantics"], batch["exemplar"], batch["exemplar_semantics"])["plan"]

    def apply_matching(self, matching: Tensor, values: Tensor, hw: tuple[int, int]) -> Tensor:
        return self.corr.apply_plan(matching, values, hw).contiguous()

    def _vgg(self, x: Tensor) -> list[Tensor]:
        feats = self.vgg((x + 1) / 2 if self.settings["vgg_normal_correct"] else x)
        return [feats[name] for name in VGG_LAYERS]

    def mask_term(self, warp_mask: Tensor, batch: dict) -> Tensor:
        """L1 between the warped exemplar semantics and the input's, resized to the grid and cast to integers as the
        released code does (one-hot labels stay as they are), × :data:`MASK_L1_WEIGHT`."""
        target = F.interpolate(batch["semantics"].float(), size=warp_mask.shape[2:], mode="nearest").long()
        return F.l1_loss(warp_mask, target.float()) * MASK_L1_WEIGHT
