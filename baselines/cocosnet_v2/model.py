"""``model=cocosnet_v2``: CoCosNet v2 as a LightningModule (manual optimisation, alternating G and D steps).

Zhou et al., "CoCosNet v2: Full-Resolution Correspondence Learning for Image Translation", CVPR 2021;
https://github.com/microsoft/CoCosNet-v2 (MIT). The networks are :class:`~.correspondence.CorrespondenceV2` and
:class:`~.generator.GeneratorV2` (together :class:`CoCosNetV2Net`); the discriminator, the optimisers and the
learning-rate schedule are DynaST's (:class:`~baselines.dynast.model.DynaST`, which inherits them from this code:
two timescales in the first epoch only). The losses follow ``models/pix2pix_model.py`` (``compute_generator_loss``)
and the options of the README's DeepFashion-HD training command:

- ``domain``: the L1 between the input adaptor's and the exemplar adaptor's (on the ground truth) normalised levels,
  × ``weight_novgg_featpair`` (10);
- ``warp_cycle``: the L1 between the cycle warp and the exemplar pooled to 1/8, × ``weight_warp_cycle`` (1; not
  restricted to paired samples);
- ``warp_self``: each of the four warps against the ground truth pooled alike, paired samples, × 500 each;
- ``gan`` (10), ``gan_feat`` (10), ``fm`` (10 · ``fm_ratio`` 1, paired), ``perc`` (relu4_2, 0.001) as DynaST's;
- ``contextual``: CoCosNet's contextual loss to the exemplar, × ``weight_vgg · weight_contextual`` (10 · 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from midms.baselines.cocosnet_v2.correspondence import CorrespondenceV2
from midms.baselines.cocosnet_v2.generator import GeneratorV2
from midms.baselines.dynast.model import DEFAULT_SETTINGS as DYNAST_SETTINGS
from midms.baselines.dynast.model import DynaST
from torch import Tensor, nn

from midms.models.gan import paired_ground_truth
from midms.nn import losses
from midms.nn.generator import require_image_size

#: CoCosNet v2's options (``options/train_options.py``); defaults as released
DEFAULT_SETTINGS: dict[str, Any] = {
    **DYNAST_SETTINGS,
    "weight_warp_self": 0.0,
    "weight_warp_cycle": 0.0,
    "weight_novgg_featpair": 10.0,
    "weight_contextual": 1.0,
    "fm_reference_batch": 2,  # the DeepFashion-HD command: --batchSize 16 over 8 GPUs
}


class CoCosNetV2Net(nn.Module):
    """The correspondence and the generator: ``forward(...) -> {"fake", "warps", "warp_cycle"?, "domain_loss"?,
    "extra_warps"?}``."""

    def __init__(
        self,
        semantic_nc: int,
        nef: int = 32,
        ngf: int = 64,
        temperature: float = 0.01,
        iterations: int = 5,
        gru_hidden: int = 32,
        gru_motion: int = 64,
        spade_hidden: int = 128,
    ):
        super().__init__()
        widths = {"gru_hidden": gru_hidden, "gru_motion": gru_motion, "spade_hidden": spade_hidden}
        self.corr = CorrespondenceV2(semantic_nc, nef, temperature=temperature, iterations=iterations, **widths)
        self.generator = GeneratorV2(semantic_nc, ngf, spade_hidden)

    def forward(self, semantics, exemplar, exemplar_semantics, image=None, cycle=False, extra=None) -> dict:
        out = self.corr(semantics, exemplar, exemplar_semantics, image=image, cycle=cycle, extra=extra)
        out["fake"] = self.generator(semantics, out["warps"])
        return out


class CoCosNetV2(DynaST):
    """CoCosNet v2 (CVPR 2021). Networks: ``generator`` (:class:`CoCosNetV2Net`: ``corr`` and ``generator``),
    ``discriminator``.

    Args: ``nef`` (32), ``ngf`` (64), ``ndf`` (64), ``temperature`` (0.01), ``iterations`` (PatchMatch steps, 5),
    ``gru_hidden``, ``gru_motion`` and ``spade_hidden`` (32, 64 and 128 as released; narrower at the tiny size), and as
    :class:`~baselines.dynast.model.DynaST`; ``pretrained``: a folder with the released ``latest_net_Corr.pth`` and
    ``latest_net_G.pth`` (:mod:`.released`).
    """

    model_name = "cocosnet_v2"
    default_settings = DEFAULT_SETTINGS

    def __init__(
        self,
        data_spec,
        nef: int = 32,
        ngf: int = 64,
        ndf: int = 64,
        temperature: float = 0.01,
        iterations: int = 5,
        gru_hidden: int = 32,
        gru_motion: int = 64,
        spade_hidden: int = 128,
        settings: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        vgg_weights: str | None = "torchvision",
        vgg_widths: list[int] | None = None,
        lr: float = 1e-4,
        init_gain: float = 0.02,
        pretrained: str | None = None,
        cache_dir: str | None = None,
        domain_training: Mapping[str, Any] | None = None,
    ) -> None:
        super(DynaST, self).__init__(data_spec)  # the GAN scaffold; DynaST's own construction is _setup
        require_image_size("cocosnet_v2", data_spec.image_size)
        network = {"nef": nef, "ngf": ngf, "temperature": temperature, "iterations": iterations}
        network.update(gru_hidden=gru_hidden, gru_motion=gru_motion, spade_hidden=spade_hidden)
        self._setup(data_spec, network, ndf, settings, overrides, vgg_weights, vgg_widths, lr, init_gain, cache_dir,
                    domain_training, pretrained)  # fmt: skip

    def build_generator(self, semantic_nc: int, image_size: int, network: dict) -> nn.Module:
        return CoCosNetV2Net(semantic_nc, **network)

    def load_released(self, folder: str) -> dict[str, str]:
        from midms.baselines.cocosnet_v2.released import load_released

        return load_released(self.generator.corr, self.generator.generator, folder)

    def forward(self, batch: dict, image: Tensor | None = None, cycle: bool = False, extra: Tensor | None = None):
        return self.generator(
            batch["semantics"], batch["exemplar"], batch["exemplar_semantics"], image=image, cycle=cycle, extra=extra
        )

    @torch.no_grad()
    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The output and the full-resolution warp of ``values`` (the last level's weights) from one pass."""
        if values is None:
            return self.translate(batch), None
        out = self(batch, extra=values.float())
        return out["fake"].clamp(-1, 1), out["extra_warps"][-1]

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        s = self.settings
        real, paired = paired_ground_truth(batch, s["reconstruction_target"], self.device)
        image = real if s["weight_novgg_featpair"] > 0 else None
        out = self(batch, image=image, cycle=s["weight_warp_cycle"] > 0)
        weights = losses.paired_sample_weights(paired, reference_batch=s["fm_reference_batch"])
        terms: dict[str, Tensor] = {}
        if image is not None:
            terms["domain"] = out["domain_loss"] * s["weight_novgg_featpair"]
        if s["weight_warp_cycle"] > 0:
            factor = batch["exemplar"].shape[-1] // out["warp_cycle"].shape[-1]
            pooled = F.avg_pool2d(batch["exemplar"], factor, stride=factor)
            terms["warp_cycle"] = F.l1_loss(out["warp_cycle"], pooled) * s["weight_warp_cycle"]
        terms.update(self.warp_and_gan_terms(batch, out, real, weights))
        fake_feats, real_feats = self._vgg(out["fake"]), self._vgg(real)
        with torch.no_grad():
            ref_feats = self._vgg(batch["exemplar"])
        terms.update(self.vgg_terms(fake_feats, real_feats, weights))
        contextual = losses.contextual_pyramid(fake_feats, ref_feats)
        terms["contextual"] = contextual * s["weight_vgg"] * s["weight_contextual"]
        return terms, out
