"""``model=cocosnet``: CoCosNet as a LightningModule (manual optimisation, alternating G and D steps).

Zhang, Zhang, Chen, Yuan and Wen, "Cross-domain Correspondence Learning for Exemplar-based Image
Translation", CVPR 2020; https://github.com/microsoft/CoCosNet. The losses and their weights follow
``models/pix2pix_model.py`` and ``options/train_options.py`` of the released code and the training commands
of its README (per dataset in ``conf/model/cocosnet.yaml``):

- ``gan``: hinge loss of the two-scale discriminator on ``cat(semantics, image)``, × ``weight_gan`` (10);
- ``gan_feat``: discriminator feature matching, × ``lambda_feat`` (10);
- ``fm``: VGG feature matching (L1 at relu1_2..relu5_2, weights 1/32..1) against the ground truth, only for
  paired samples (the dataset's ``paired`` flag, CoCosNet's ``self_ref``; without it ``exemplar_id == id``: the
  exemplar is the photo itself), × ``lambda_vgg · fm_ratio``; the
  released code averages it per GPU (a per-GPU batch of 4 on 8 GPUs), so it is scaled by
  ``batch / fm_reference_batch`` (4) here: the same effective weight on any number of devices and batch;
- ``perc``: MSE at relu4_2 or relu5_2 against the ground truth, × ``weight_perceptual``;
- ``contextual``: contextual loss to the exemplar at relu5_2 (×8), relu4_2 (×4) and 2×-pooled relu3_2 (×2),
  × ``lambda_vgg · ctx_w``;
- ``domain``: L1 between the adapted semantics and the adapted real photo (domain alignment), × ``novgg_featpair``;
- ``warp_cycle``: L1 between the warp warped back and the pooled exemplar (the exemplar itself with
  ``warp_patch``), × ``warp_cycle_w``;
- ``warp_self`` (``warp_self_w`` > 0): L1 between the warp and the ground truth, weighted per sample as ``fm``
  (paired samples only), × ``warp_self_w`` (0 by default; 100 in the DeepFashion command, whose training pairs are
  the photo itself or another view of the same garment, both paired);
- ``mask`` (``warp_mask_losstype: direct``): NLL of the input's labels under the warped exemplar one-hot
  semantics at 1/4 resolution (classes absent from the exemplar and ``mask_ignore_index`` excluded), × ``weight_mask``.

Optimisers as the released code with TTUR: Adam for generator + correspondence (lr/2 = 1e-4, β = (0, 0.9),
eps 1e-3) and for the discriminator (2·lr = 4e-4, β = (0, 0.9)); constant for ``niter`` epochs, then a
linear decay over ``niter_decay`` epochs (stepped at each epoch's end).

On the synthetic dataset, which has a ground-truth translation, ``reconstruction_target: target`` makes
``target`` the ground truth of ``fm``/``perc`` (for every sample) and the discriminator's real image; on the
real datasets it is ``image``, the input's own photo, as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from midms.baselines.cocosnet.correspondence import DOWN, CorrespondenceNet
from midms.baselines.cocosnet.generator import CoCosNetGenerator
from torch import Tensor

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.models.base import plain
from midms.models.gan import AlternatingGAN, build_loss_vgg, paired_ground_truth, random_vgg_warning
from midms.nn import losses
from midms.nn.blocks import init_weights
from midms.nn.correspondence import soft_warp
from midms.nn.discriminator import MultiscaleDiscriminator
from midms.nn.generator import require_image_size
from midms.training.schedules import linear_decay

VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")

#: loss settings and their defaults (``options/train_options.py`` and ``base_options.py`` of the released code)
DEFAULT_SETTINGS: dict[str, Any] = {
    "maskmix": True,
    "warp_bilinear": False,
    "warp_patch": False,
    "adaptor_kernel": 3,
    "warp_mask_losstype": "none",  # none | direct
    "weight_mask": 0.0,
    "mask_ignore_index": 0,  # class without a mask loss (ADE20K's "unknown"); null: none
    "warp_cycle_w": 0.0,
    "warp_self_w": 0.0,
    "which_perceptual": "relu5_2",
    "weight_perceptual": 0.01,
    "fm_ratio": 0.1,
    # the per-GPU batch of the released runs (8 GPUs × 4): ``fm`` is scaled by (local batch / 4), so its weight
    # does not depend on how a batch is split over devices
    "fm_reference_batch": 4,
    "lambda_vgg": 10.0,
    "lambda_feat": 10.0,
    "ctx_w": 1.0,
    "use_22ctx": False,
    "weight_gan": 10.0,
    "novgg_featpair": 10.0,
    "reconstruction_target": "image",  # image | target (the synthetic data's ground truth)
    "niter": 100,
    "niter_decay": 100,
}


class CoCosNet(AlternatingGAN):
    """CoCosNet (CVPR 2020). Networks: ``corr`` (:class:`CorrespondenceNet`), ``generator``, ``discriminator``.

    Args:
        data_spec: from the runner; ``semantic_nc`` sizes the networks.
        ngf, ndf, match_channels, spade_hidden: widths (paper: 64, 64, 256, 128).
        settings: per-dataset loss and schedule settings (keys of :data:`DEFAULT_SETTINGS`).
        overrides: applied on top of ``settings`` (the ablations).
        vgg_weights: ``"torchvision"``, a path to CoCosNet's ``vgg19_conv.pth`` (Caffe pre-processing), or
            ``"domain"``: a VGG19 of ``vgg_widths`` trained on the synthetic training split
            (:mod:`midms.nn.domain_vgg`; ``domain_training``, cached under ``cache_dir``), or
            ``"random"``: a randomly (He-) initialised VGG19 of ``vgg_widths`` — only for tests and tiny CPU runs;
            it is logged as a warning and recorded in :attr:`protocol` (``warning``); None: no loss network, for
            evaluation only (``train=false``).
        lr: the base rate of the released code (2e-4); generator and correspondence train at lr/2, D at 2·lr.
        temperature: of the correlation softmax (0.01).
        pretrained: a folder with the released ``latest_net_Corr.pth`` and ``latest_net_G.pth``, loaded strictly
            into the correspondence and the generator (:mod:`.released`); their SHA-256 go into :attr:`protocol`.
    """

    can_warp = True

    def __init__(
        self,
        data_spec: DataSpec,
        ngf: int = 64,
        ndf: int = 64,
        match_channels: int = 256,
        spade_hidden: int = 128,
        settings: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        vgg_weights: str | None = "torchvision",
        vgg_widths: list[int] | None = None,
        lr: float = 2e-4,
        temperature: float = 0.01,
        use_attention: bool = True,
        pono: bool = True,
        init_gain: float = 0.02,
        pretrained: str | None = None,
        cache_dir: str | None = None,
        domain_training: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(data_spec)
        require_image_size(self.model_name, data_spec.image_size)
        # plain containers: the hyper-parameters are pickled into checkpoints that torch.load(weights_only) reads
        settings, overrides, vgg_widths = plain(settings), plain(overrides), plain(vgg_widths)
        domain_training = plain(domain_training)
        defaults = self.default_settings
        unknown = set(settings or {}).union(overrides or {}) - defaults.keys()
        if unknown:
            raise UserError(
                f"model={self.model_name}: unknown loss settings {sorted(unknown)}; known: {sorted(defaults)}"
            )
        self.settings = {**defaults, **dict(settings or {}), **dict(overrides or {})}
        s = self.settings
        if s["warp_mask_losstype"] not in ("none", "direct"):
            raise UserError(f"warp_mask_losstype must be none or direct, got {s['warp_mask_losstype']!r}")
        if s["which_perceptual"] not in VGG_LAYERS:
            raise UserError(f"which_perceptual must be one of {VGG_LAYERS}, got {s['which_perceptual']!r}")
        self.save_hyperparameters(ignore=["data_spec"])
        self.automatic_optimization = False
        self.lr = lr
        nc = data_spec.semantic_nc
        self.build_networks(nc, ngf, match_channels, spade_hidden, temperature, use_attention, pono)
        # the released code pads the discriminator's 4×4 convolutions by 1 (SPADE's by 2)
        self.discriminator = MultiscaleDiscriminator(nc + 3, ndf=ndf, use_attention=use_attention, padding=1)
        for net in (self.corr, self.generator, self.discriminator):
            init_weights(net, init_gain)
        # None: evaluation only (train=false): the losses' VGG19 is neither built nor needed
        self.cache_dir, self.domain_training = cache_dir, domain_training
        # CoCosNet feeds [0, 1] images: a domain network ("signed") brings them to its [-1, 1]
        self.vgg = build_loss_vgg(self.model_name, vgg_weights, vgg_widths, VGG_LAYERS)
        self.protocol = {
            "model": self.model_name,
            "vgg_weights": self.vgg.weights_id if self.vgg is not None else None,
            "settings": dict(self.settings),
        }
        self.protocol.update(random_vgg_warning(self.vgg))
        if pretrained:
            self.protocol["pretrained"] = {"folder": str(pretrained), **self.load_released(pretrained)}

    #: the ``model=`` name (errors, the protocol) and the loss settings with their defaults
    model_name = "cocosnet"
    default_settings = DEFAULT_SETTINGS

    def build_networks(
        self,
        nc: int,
        ngf: int,
        match_channels: int,
        spade_hidden: int,
        temperature: float,
        use_attention: bool,
        pono: bool,
    ) -> None:
        """``corr`` and ``generator`` (the discriminator is shared by the subclasses)."""
        s = self.settings
        self.corr = CorrespondenceNet(
            nc,
            ngf=ngf,
            match_channels=match_channels,
            spade_hidden=spade_hidden,
            adaptor_kernel=s["adaptor_kernel"],
            maskmix=s["maskmix"],
            temperature=temperature,
            warp_bilinear=s["warp_bilinear"],
            pono=pono,
            warp_patch=s["warp_patch"],
        )
        self.generator = CoCosNetGenerator(
            nc, ngf=ngf, spade_hidden=spade_hidden, pono=pono, use_attention=use_attention
        )

    def load_released(self, folder: str) -> dict[str, str]:
        """The released files loaded strictly into ``corr`` and ``generator``; returns ``{file name: SHA-256}``."""
        from midms.baselines.cocosnet.released import load_released

        return load_released(self.corr, self.generator, folder)

    # -- the networks -------------------------------------------------------------------------------

    def forward(self, batch: dict, image: Tensor | None = None, losses: bool = True) -> dict[str, Tensor]:
        """Correspondence then generation. ``image`` (training) adds the domain-alignment term; ``losses`` the
        warps only the losses read (the cycle warp, the warped mask), which translation skips as the official
        test path does (its test options leave ``warp_cycle_w`` at 0)."""
        s = self.settings
        out = self.corr(
            batch["semantics"],
            batch["exemplar"],
            batch["exemplar_semantics"],
            image=image,
            cycle=losses and s["warp_cycle_w"] > 0,
            warp_mask=losses and s["warp_mask_losstype"] == "direct",
        )
        out["fake"] = self.generator(out["warp"], batch["semantics"])
        return out

    @torch.no_grad()
    def translate(self, batch: dict) -> Tensor:
        return self(batch, losses=False)["fake"].clamp(-1, 1)

    #: the forward output holding the matching the warp applies (the correlation, before its temperature)
    matching_key = "corr"

    def matching(self, batch: dict) -> Tensor:
        """The input-to-exemplar matching alone (no generation): the correlation, B×hw×hw."""
        return self.corr.correlate(batch["semantics"], batch["exemplar"], batch["exemplar_semantics"])[0]

    def apply_matching(self, matching: Tensor, values: Tensor, hw: tuple[int, int]) -> Tensor:
        """Grid-sized exemplar ``values`` (B×C×h×w) warped by ``matching``: the temperature softmax."""
        return soft_warp(matching, values, self.corr.temperature, hw)

    @torch.no_grad()
    def warp(self, batch: dict, values: Tensor | None = None) -> Tensor:
        """Warp exemplar-aligned ``values`` (default the exemplar's semantics) by the correspondence: resized to its
        grid (nearest, as the released codes resize the exemplar's semantics), warped, and up-sampled back to H×W as
        the network up-samples its warp (bilinear or nearest)."""
        return self._warp_by(self.matching(batch), batch, values)

    @torch.no_grad()
    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The output and the warp of ``values`` from one matching."""
        out = self(batch, losses=False)
        warped = None if values is None else self._warp_by(out[self.matching_key], batch, values)
        return out["fake"].clamp(-1, 1), warped

    def _warp_by(self, matching: Tensor, batch: dict, values: Tensor | None) -> Tensor:
        values = batch["exemplar_semantics"] if values is None else values
        hw = (batch["semantics"].shape[2] // DOWN, batch["semantics"].shape[3] // DOWN)
        low = F.interpolate(values.float(), size=hw, mode="nearest")
        return self.corr.upsample(self.apply_matching(matching, low, hw), tuple(values.shape[2:]))

    # -- losses -------------------------------------------------------------------------------------

    def _vgg(self, x: Tensor) -> list[Tensor]:
        feats = self.vgg((x + 1) / 2)  # [-1, 1] -> [0, 1]; VGG19Features applies its own pre-processing
        return [feats[name] for name in VGG_LAYERS]

    def reconstruction(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The ground truth of the paired losses and the per-sample paired flags (B)."""
        return paired_ground_truth(batch, self.settings["reconstruction_target"], self.device)

    def contextual(self, fake_feats: list[Tensor], ref_feats: list[Tensor]) -> Tensor:
        total = losses.contextual_pyramid(fake_feats, ref_feats)
        if self.settings["use_22ctx"]:
            ctx = losses.contextual_loss
            total = total + ctx(F.avg_pool2d(fake_feats[1], 4), F.avg_pool2d(ref_feats[1].detach(), 4))
        return total

    def mask_term(self, warp_mask: Tensor, batch: dict) -> Tensor:
        """The weighted ``mask`` term."""
        return self.mask_loss(warp_mask, batch) * self.settings["weight_mask"]

    def mask_loss(self, warp_mask: Tensor, batch: dict) -> Tensor:
        if "labels" not in batch or "exemplar_labels" not in batch:
            raise UserError("warp_mask_losstype=direct needs region labels (labels, exemplar_labels) in the data")
        size = warp_mask.shape[2:]
        gt = F.interpolate(batch["labels"][:, None].float(), size=size, mode="nearest")[:, 0].long()
        ref = F.interpolate(batch["exemplar_labels"][:, None].float(), size=size, mode="nearest")[:, 0].long()
        weights = torch.stack([torch.isin(g, r.unique()) for g, r in zip(gt, ref, strict=True)]).float()
        if self.settings["mask_ignore_index"] is not None:
            weights = weights * (gt != self.settings["mask_ignore_index"]).float()
        nll = F.nll_loss(torch.log(warp_mask + 1e-10), gt, reduction="none")  # B×h×w
        return (nll * weights).sum() / (weights.sum() + 1e-5)

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The weighted generator-side terms (keys as in the module docstring) and the forward outputs."""
        s = self.settings
        real, paired = self.reconstruction(batch)
        out = self(batch, image=real)
        fake = out["fake"]
        terms: dict[str, Tensor] = {}
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake, real)
        terms["gan"] = losses.hinge_g_loss(pred_fake) * s["weight_gan"]
        terms["gan_feat"] = losses.gan_feature_matching_loss(pred_fake, pred_real) * s["lambda_feat"]
        fake_feats, real_feats = self._vgg(fake), self._vgg(real)
        with torch.no_grad():
            ref_feats = self._vgg(batch["exemplar"])
        # CoCosNet's weighted L1 (flags / their sum, then a mean over the batch) is 1/batch of the paired mean on
        # each GPU; scaled to the released runs' per-GPU batch, one device × 32 weighs it as 8 GPUs × 4 did
        weights = losses.paired_sample_weights(paired, reference_batch=s["fm_reference_batch"])
        terms["fm"] = (
            losses.vgg_feature_matching_loss(fake_feats, real_feats, weights) * s["lambda_vgg"] * s["fm_ratio"]
        )
        k = VGG_LAYERS.index(s["which_perceptual"])
        terms["perc"] = losses.perceptual_loss(fake_feats[k], real_feats[k]) * s["weight_perceptual"]
        if s["ctx_w"] > 0:
            terms["contextual"] = self.contextual(fake_feats, ref_feats) * s["lambda_vgg"] * s["ctx_w"]
        if s["novgg_featpair"] > 0:
            terms["domain"] = out["domain_loss"] * s["novgg_featpair"]
        if s["warp_cycle_w"] > 0:  # compared at the warp's resolution: the pooled exemplar, or itself with patches
            exemplar = batch["exemplar"] if s["warp_patch"] else F.avg_pool2d(batch["exemplar"], DOWN)
            terms["warp_cycle"] = F.l1_loss(out["warp_cycle"], exemplar) * s["warp_cycle_w"]
        if s["warp_self_w"] > 0:
            terms["warp_self"] = losses.weighted_l1(out["warp"], real, weights) * s["warp_self_w"]
        if s["warp_mask_losstype"] == "direct":
            terms["mask"] = self.mask_term(out["warp_mask"], batch)
        return terms, out

    def discriminator_losses(self, batch: dict, fake: Tensor) -> dict[str, Tensor]:
        real, _ = self.reconstruction(batch)
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake.detach(), real)
        w = self.settings["weight_gan"]
        return {
            "d_fake": losses.hinge_d_loss(pred_fake, real=False) * w,
            "d_real": losses.hinge_d_loss(pred_real, real=True) * w,
        }

    # -- Lightning ----------------------------------------------------------------------------------

    def configure_optimizers(self):
        s = self.settings
        opt_g = torch.optim.Adam(
            [{"params": self.generator.parameters()}, {"params": self.corr.parameters()}],
            lr=self.lr / 2,
            betas=(0.0, 0.9),
            eps=1e-3,
        )
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr * 2, betas=(0.0, 0.9))
        factor = linear_decay(s["niter"], s["niter_decay"])
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedulers
