"""``model=matebit``: MATEBIT as a LightningModule (manual optimisation, alternating G and D steps).

Jiang et al., "Masked and Adaptive Transformer for Exemplar Based Image Translation", CVPR 2023;
https://github.com/AiArt-Gao/MATEBIT. The generator is the CelebA-HQ edge model
(:class:`~baselines.matebit.network.MATEBITGenerator`); the discriminator, the optimisers and the learning-rate
schedule (two timescales in the first epoch only, as the released trainer's ``update_learning_rate``) are DynaST's,
which MATEBIT's code inherits (:class:`~baselines.dynast.model.DynaST`). The losses follow
``models/pix2pix_model.py`` (``compute_generator_loss``) and the generator's feature-pair term:

- DynaST's ``warp_self`` (the ``n_layers`` warps at 1/8, × 1000 each), ``gan`` (10), ``gan_feat`` (10), ``fm`` (10 ·
  ``fm_ratio`` 1, paired samples) and ``perc`` (relu4_2, 0.001);
- ``contextual``: CoCosNet's contextual loss to the exemplar (relu5_2 ×8, relu4_2 ×4, 2×-pooled relu3_2 ×2; channel
  centring with ``--PONO``), × ``weight_vgg · weight_contextual`` (10 · 1);
- ``style``: the L1 between Gram matrices (``F Fᵀ / (C·H·W)``) of the output's and the exemplar's VGG19 features,
  relu1_2 ... relu5_2 weighted 1, 1/2, 1/4, 1/8, 1/16, × ``style_weight · weight_vgg`` (the CelebA-HQ command's 0.1 ·
  10);
- ``domain``: the L1 between the normalised input-encoder levels and the exemplar encoder's levels of the ground
  truth (with the input's semantics), summed over the four levels, × ``weight_novgg_featpair`` (10).

Not ported: the contrastive style loss, active only after epoch 101 (``generator_celebahqedge.py``) and so never in the
released 60-epoch CelebA-HQ run, and the optional marginal contrastive loss (``--mcl``, off in the commands).

The released training command passes ``--use_atten`` and its test command does not: the decoder's self-attention
is trained and then left out at test time. ``attention`` and ``attention_at_test`` reproduce that (both settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from midms.baselines.dynast.model import DEFAULT_SETTINGS as DYNAST_SETTINGS
from midms.baselines.dynast.model import DynaST
from midms.baselines.dynast.network import L2_EPS
from midms.baselines.matebit.network import MATEBITGenerator
from torch import Tensor, nn

from midms.models.gan import paired_ground_truth
from midms.nn import losses
from midms.nn.blocks import l2_normalize

#: MATEBIT's options (``options/train_options.py``, ``pix2pix_model.py``) beyond DynaST's; defaults as released
DEFAULT_SETTINGS: dict[str, Any] = {
    **DYNAST_SETTINGS,
    "weight_contextual": 1.0,
    "style_weight": 1.0,
    "weight_novgg_featpair": 10.0,
    "fm_reference_batch": 4,  # the CelebA-HQ command: --batchSize 4 on one GPU
    "attention": True,  # --use_atten (training command)
    "attention_at_test": False,  # the test command has no --use_atten
}
#: Gram-loss weights of relu1_2 ... relu5_2 (``loss.py`` ``StyleLoss``)
STYLE_LAYER_WEIGHTS = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)


def gram(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    f = x.view(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (h * w * c)


class MATEBIT(DynaST):
    """MATEBIT (CVPR 2023). Networks: ``generator`` (:class:`MATEBITGenerator`), ``discriminator``.

    Args: as :class:`~baselines.dynast.model.DynaST` (``n_layers`` 3 as released), and ``memory_slots`` (1024);
    ``pretrained``: a folder with the released ``latest_net_G.pth`` (:mod:`.released`).
    """

    model_name = "matebit"
    default_settings = DEFAULT_SETTINGS

    def __init__(
        self,
        data_spec,
        ngf: int = 64,
        ndf: int = 64,
        max_multi: int = 8,
        n_layers: int = 3,
        pos_dim: int = 16,
        prune_dim: int = 16,
        memory_slots: int = 1024,
        settings: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        vgg_weights: str | None = "torchvision",
        vgg_widths: list[int] | None = None,
        lr: float = 2e-4,
        init_gain: float = 0.02,
        pretrained: str | None = None,
        cache_dir: str | None = None,
        domain_training: Mapping[str, Any] | None = None,
    ) -> None:
        super(DynaST, self).__init__(data_spec)  # the GAN scaffold; DynaST's own construction is _setup
        network = {"ngf": ngf, "max_multi": max_multi, "n_layers": n_layers, "pos_dim": pos_dim}
        network.update(prune_dim=prune_dim, memory_slots=memory_slots)
        self._setup(data_spec, network, ndf, settings, overrides, vgg_weights, vgg_widths, lr, init_gain, cache_dir,
                    domain_training, pretrained)  # fmt: skip

    def build_generator(self, semantic_nc: int, image_size: int, network: dict) -> nn.Module:
        return MATEBITGenerator(semantic_nc, image_size, **network)

    def load_released(self, folder: str) -> dict[str, str]:
        from midms.baselines.matebit.released import load_released

        return load_released(self.generator, folder)

    def forward(self, batch: dict, warps: bool = False, warp_source: Tensor | None = None) -> dict:
        attention = self.settings["attention"] if self.training else self.settings["attention_at_test"]
        return self.generator(
            batch["semantics"],
            batch["exemplar"],
            batch["exemplar_semantics"],
            warps=warps,
            attention=attention,
            warp_source=warp_source,
        )

    @torch.no_grad()
    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The output and the warp of ``values`` from one pass: the last block's warp at 1/8 (the level MATEBIT
        matches at, where its warp loss reads it), up-sampled bilinearly to the values' size."""
        if values is None:
            return self.translate(batch), None
        out = self(batch, warps=True, warp_source=values.float())
        warp = F.interpolate(out["warps"][-1], size=values.shape[2:], mode="bilinear", align_corners=False)
        return out["fake"].clamp(-1, 1), warp

    def domain_term(self, out: dict, real: Tensor, semantics: Tensor) -> Tensor:
        """The feature-pair term: the exemplar encoder on the ground truth against the input encoder, level by level."""
        paired = self.generator.encoder_kv(torch.cat((real, semantics), dim=1))
        total = real.new_zeros(())
        for seg, ref in zip(out["seg_features"], paired, strict=True):
            total = total + F.l1_loss(seg, l2_normalize(ref, L2_EPS))
        return total

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        s = self.settings
        real, paired = paired_ground_truth(batch, s["reconstruction_target"], self.device)
        out = self(batch, warps=True)
        weights = losses.paired_sample_weights(paired, reference_batch=s["fm_reference_batch"])
        terms: dict[str, Tensor] = {}
        if s["weight_novgg_featpair"] > 0:
            terms["domain"] = self.domain_term(out, real, batch["semantics"]) * s["weight_novgg_featpair"]
        terms.update(self.warp_and_gan_terms(batch, out, real, weights))
        fake_feats, real_feats = self._vgg(out["fake"]), self._vgg(real)
        with torch.no_grad():
            ref_feats = self._vgg(batch["exemplar"])
        terms.update(self.vgg_terms(fake_feats, real_feats, weights))
        terms["contextual"] = (
            losses.contextual_pyramid(fake_feats, ref_feats) * s["weight_vgg"] * s["weight_contextual"]
        )
        if s["style_weight"] > 0:
            style = sum(
                w * F.l1_loss(gram(f), gram(r))
                for w, f, r in zip(STYLE_LAYER_WEIGHTS, fake_feats, ref_feats, strict=True)
            )
            terms["style"] = style * s["style_weight"] * s["weight_vgg"]
        return terms, out
