"""``model=dynast``: DynaST as a LightningModule (manual optimisation, alternating G and D steps).

Liu, Zheng, Xu, Wang, Zhang and Shen, "DynaST: Dynamic Sparse Transformer for Exemplar-Guided Image Generation",
ECCV 2022; https://github.com/Huage001/DynaST. The losses and their weights follow ``models/pix2pix_model.py``
(``compute_generator_loss``) and the options of ``train_deepfashion.sh``:

- ``warp_self``: for each of the generator's warps (``n_layers`` per level: the exemplar pooled to 1/8, 1/4, 1/2
  and 1, warped), the L1 to the ground truth pooled alike, weighted per sample by the paired flags as CoCosNet's
  ``fm`` (flags / their sum), × ``weight_warp_self`` (1000) each;
- ``gan``: hinge loss of the two-scale discriminator on ``cat(semantics, image)``, × ``weight_gan`` (10);
- ``gan_feat``: discriminator feature matching, × ``weight_gan_feat`` (10);
- ``fm``: VGG feature matching (L1 at relu1_2..relu5_2, weights 1/32..1) against the ground truth, paired samples
  only, × ``weight_vgg · fm_ratio`` (10 · 1); the released runs average it per GPU over 5 samples (batch 40 on 8
  GPUs), so it and ``warp_self`` are scaled by ``batch / fm_reference_batch`` (5): the same weight on any devices;
- ``perc``: MSE at relu4_2 against the ground truth, × ``weight_perceptual`` (0.001).

There is no contextual loss: the released code computes the exemplar's VGG features and never uses them. The
discriminator is CoCosNet's (:class:`~midms.nn.discriminator.MultiscaleDiscriminator`: two scales, four layers,
spectral-instance norm, 4×4 kernels padded by 1, no attention; the official one also builds an unused decoder).

Optimisers as ``create_optimizers``: Adam for the generator at lr/2 (β = (0, 0.9), eps 1e-3) and for the
discriminator at 2·lr (β = (0, 0.9)). The released trainer's ``update_learning_rate`` runs at every epoch's end and
sets both to the base rate, so the two-timescale rates hold for the first epoch only; then both train at ``lr``,
decaying linearly to zero over ``niter_decay`` epochs after ``niter``. That is reproduced
(``ttur_first_epoch_only``; false keeps TTUR throughout).

The generator's spectral norm runs one power iteration per training forward as the official one, in PyTorch's
current parametrisation, which updates ``u`` then ``v`` where the official (old hook) form updates ``v`` then ``u``:
the same weights give the same output in evaluation to the bit, and training forwards that differ in the last
digits of the normalised weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from midms.baselines.dynast.network import DynaSTGenerator
from torch import Tensor, nn

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.models.base import plain
from midms.models.gan import AlternatingGAN, build_loss_vgg, paired_ground_truth, random_vgg_warning
from midms.nn import losses
from midms.nn.blocks import init_weights
from midms.nn.discriminator import MultiscaleDiscriminator
from midms.training.schedules import linear_decay

VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")

#: loss and schedule settings; the defaults are the released options' (``pix2pix_model.py``, ``train_options.py``)
DEFAULT_SETTINGS: dict[str, Any] = {
    "weight_warp_self": 1000.0,
    "weight_gan": 10.0,
    "weight_gan_feat": 10.0,
    "which_perceptual": "relu4_2",
    "weight_perceptual": 0.001,
    "weight_vgg": 10.0,
    "fm_ratio": 1.0,
    # the per-GPU batch of the released DeepFashion run (40 on 8 GPUs)
    "fm_reference_batch": 5,
    "reconstruction_target": "image",  # image | target (the synthetic data's ground truth)
    "ttur_first_epoch_only": True,
    "niter": 100,
    "niter_decay": 0,
}


class DynaST(AlternatingGAN):
    """DynaST (ECCV 2022). Networks: ``generator`` (:class:`DynaSTGenerator`: matching and generation in one),
    ``discriminator``.

    Args:
        data_spec: from the runner; ``semantic_nc`` and ``image_size`` size the generator.
        ngf, ndf, max_multi, n_layers, top_k, smooth, pos_dim, prune_dim: the generator's options (released
            DeepFashion: 64, 64, 8, 2, 4, 0.01, 16, 16).
        settings, overrides: loss and schedule settings (keys of :data:`DEFAULT_SETTINGS`), overrides on top.
        vgg_weights, vgg_widths, cache_dir, domain_training: the losses' VGG19, as CoCosNet's
            (:func:`~midms.models.gan.build_loss_vgg`; the released runs use CoCosNet's Caffe ``vgg19_conv.pth``).
        lr: the released base rate (1e-4 in the DeepFashion command).
        pretrained: a folder with the released ``latest_net_G.pth``, loaded strictly (:mod:`.released`).
    """

    can_warp = True

    def __init__(
        self,
        data_spec: DataSpec,
        ngf: int = 64,
        ndf: int = 64,
        max_multi: int = 8,
        n_layers: int = 2,
        top_k: int = 4,
        smooth: float = 0.01,
        pos_dim: int = 16,
        prune_dim: int = 16,
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
        super().__init__(data_spec)
        network = {"ngf": ngf, "max_multi": max_multi, "n_layers": n_layers, "top_k": top_k, "smooth": smooth}
        network.update(pos_dim=pos_dim, prune_dim=prune_dim)
        self._setup(data_spec, network, ndf, settings, overrides, vgg_weights, vgg_widths, lr, init_gain, cache_dir,
                    domain_training, pretrained)  # fmt: skip

    #: the config name, its defaults and the released-weights loader: a subclass (MATEBIT) sets its own
    model_name = "dynast"
    default_settings = DEFAULT_SETTINGS

    def build_generator(self, semantic_nc: int, image_size: int, network: dict) -> nn.Module:
        return DynaSTGenerator(semantic_nc, image_size, **network)

    def load_released(self, folder: str) -> dict[str, str]:
        from midms.baselines.dynast.released import load_released

        return load_released(self.generator, folder)

    def _setup(
        self, data_spec, network, ndf, settings, overrides, vgg_weights, vgg_widths, lr, init_gain, cache_dir,
        domain_training, pretrained,
    ) -> None:  # fmt: skip
        """Settings, generator, discriminator, the losses' VGG19 and the released weights (shared with MATEBIT)."""
        name, defaults = self.model_name, self.default_settings
        settings, overrides, vgg_widths = plain(settings), plain(overrides), plain(vgg_widths)
        unknown = set(settings or {}).union(overrides or {}) - defaults.keys()
        if unknown:
            raise UserError(f"model={name}: unknown settings {sorted(unknown)}; known: {sorted(defaults)}")
        self.settings = {**defaults, **dict(settings or {}), **dict(overrides or {})}
        if self.settings["which_perceptual"] not in VGG_LAYERS:
            raise UserError(f"which_perceptual must be one of {VGG_LAYERS}, got {self.settings['which_perceptual']!r}")
        size = data_spec.image_size
        if not isinstance(size, int) or size % 16:
            raise UserError(
                f"model={name} needs square images whose side is a multiple of 16 (its positional embedding is "
                f"side/8 and its levels pair 2×2 windows); got image_size={size}. Set dataset.image_size."
            )
        self.save_hyperparameters(ignore=["data_spec"])
        self.automatic_optimization = False
        self.lr = lr
        nc = data_spec.semantic_nc
        self.generator = self.build_generator(nc, size, network)
        self.discriminator = MultiscaleDiscriminator(nc + 3, ndf=ndf, padding=1)
        for net in (self.generator, self.discriminator):  # --init_type xavier --init_variance 0.02
            init_weights(net, init_gain)
        self.cache_dir, self.domain_training = cache_dir, plain(domain_training)
        self.vgg = build_loss_vgg(name, vgg_weights, vgg_widths, VGG_LAYERS)
        self.protocol = {
            "model": name,
            "vgg_weights": self.vgg.weights_id if self.vgg is not None else None,
            "settings": dict(self.settings),
            **random_vgg_warning(self.vgg),
        }
        if pretrained:
            self.protocol["pretrained"] = {"folder": str(pretrained), **self.load_released(pretrained)}

    # -- the network --------------------------------------------------------------------------------

    def forward(self, batch: dict, warps: bool = False, warp_source: Tensor | None = None) -> dict:
        return self.generator(
            batch["semantics"], batch["exemplar"], batch["exemplar_semantics"], warps=warps, warp_source=warp_source
        )

    @torch.no_grad()
    def translate(self, batch: dict) -> Tensor:
        return self(batch)["fake"].clamp(-1, 1)

    @torch.no_grad()
    def warp(self, batch: dict, values: Tensor | None = None) -> Tensor:
        """Warp exemplar-aligned ``values`` (default the exemplar's semantics) as the network warps the exemplar
        for its warp loss: by the last attention block of the finest level (its ``output2``), at full resolution."""
        return self.translate_and_warp(batch, batch["exemplar_semantics"] if values is None else values)[1]

    @torch.no_grad()
    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The output and the warp of ``values`` from one pass (the values enter only the warp, not the matching)."""
        if values is None:
            return self.translate(batch), None
        out = self(batch, warps=True, warp_source=values.float())
        return out["fake"].clamp(-1, 1), out["warps"][-1]

    # -- losses -------------------------------------------------------------------------------------

    def _vgg(self, x: Tensor) -> list[Tensor]:
        feats = self.vgg((x + 1) / 2)  # --vgg_normal_correct: [-1, 1] -> [0, 1], then the network's pre-processing
        return [feats[name] for name in VGG_LAYERS]

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        s = self.settings
        real, paired = paired_ground_truth(batch, s["reconstruction_target"], self.device)
        out = self(batch, warps=True)
        weights = losses.paired_sample_weights(paired, reference_batch=s["fm_reference_batch"])
        terms = self.warp_and_gan_terms(batch, out, real, weights)
        fake_feats, real_feats = self._vgg(out["fake"]), self._vgg(real)
        terms.update(self.vgg_terms(fake_feats, real_feats, weights))
        return terms, out

    def warp_and_gan_terms(self, batch: dict, out: dict, real: Tensor, weights: Tensor) -> dict[str, Tensor]:
        """``warp_self`` (each warp against the ground truth pooled alike), ``gan`` and ``gan_feat``."""
        s, fake = self.settings, out["fake"]
        terms: dict[str, Tensor] = {}
        if s["weight_warp_self"] > 0:
            total = fake.new_zeros(())
            for warp in out["warps"]:
                factor = real.shape[-1] // warp.shape[-1]
                target = real if factor == 1 else F.avg_pool2d(real, factor, stride=factor)
                total = total + losses.weighted_l1(warp, target, weights) * s["weight_warp_self"]
            terms["warp_self"] = total
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake, real)
        terms["gan"] = losses.hinge_g_loss(pred_fake) * s["weight_gan"]
        terms["gan_feat"] = losses.gan_feature_matching_loss(pred_fake, pred_real) * s["weight_gan_feat"]
        return terms

    def vgg_terms(self, fake_feats: list[Tensor], real_feats: list[Tensor], weights: Tensor) -> dict[str, Tensor]:
        """``fm`` (paired samples) and ``perc`` against the ground truth's VGG19 features."""
        s = self.settings
        k = VGG_LAYERS.index(s["which_perceptual"])
        return {
            "fm": losses.vgg_feature_matching_loss(fake_feats, real_feats, weights) * s["weight_vgg"] * s["fm_ratio"],
            "perc": losses.perceptual_loss(fake_feats[k], real_feats[k]) * s["weight_perceptual"],
        }

    def discriminator_losses(self, batch: dict, fake: Tensor) -> dict[str, Tensor]:
        real, _ = paired_ground_truth(batch, self.settings["reconstruction_target"], self.device)
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake.detach(), real)
        w = self.settings["weight_gan"]
        return {
            "d_fake": losses.hinge_d_loss(pred_fake, real=False) * w,
            "d_real": losses.hinge_d_loss(pred_real, real=True) * w,
        }

    # -- Lightning ----------------------------------------------------------------------------------

    def configure_optimizers(self):
        s = self.settings
        decay = linear_decay(s["niter"], s["niter_decay"])
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.0, 0.9), eps=1e-3)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=(0.0, 0.9))
        first_epoch_only = s["ttur_first_epoch_only"]

        def schedule(ttur: float):  # TTUR: G at lr/2, D at 2·lr
            def factor(epoch: int) -> float:
                return decay(epoch) if first_epoch_only and epoch > 0 else ttur * decay(epoch)

            return factor

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, schedule(t)) for opt, t in ((opt_g, 0.5), (opt_d, 2.0))]
        return [opt_g, opt_d], schedulers
