"""``model=spade``: SPADE with its VAE style encoder as a LightningModule (manual optimisation, G then D steps).

Park, Liu, Wang and Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019;
https://github.com/NVlabs/SPADE. The losses, weights and optimisers follow ``models/pix2pix_model.py``,
``models/networks/loss.py`` and ``options/train_options.py`` of the released code with ``--use_vae``:

- ``gan``: hinge loss of the two-scale discriminator on ``cat(semantics, image)`` (weight 1);
- ``gan_feat``: discriminator feature matching, L1 summed over layers and averaged over scales, × ``lambda_feat`` (10);
- ``vgg``: L1 between VGG19 features of output and ground truth at relu1_1 .. relu5_1, weights 1/32, 1/16, 1/8,
  1/4, 1, × ``lambda_vgg`` (10). As the released ``VGGLoss``, the [-1, 1] images go into torchvision's ImageNet
  VGG19 without the ImageNet normalisation;
- ``kld``: ``-0.5 · Σ(1 + logvar - mu² - exp(logvar))``, summed over the batch and the code, × ``lambda_kld`` (0.05).
  The released ``KLDLoss`` sums over each GPU's share of the batch and ``trainers/pix2pix_trainer.py`` averages the
  GPUs' losses (``sum(g_losses.values()).mean()``), so its weight is that of a sum over the per-GPU batch (4: 32 on
  8 GPUs); here the sum is scaled by ``kld_reference_batch / batch``, the same effective weight on any number of
  devices and batch (under DDP each rank's term, whose gradients DDP averages, as the released GPUs').

In training the encoder sees the ground truth (the image the generator reconstructs), as the released code; at
evaluation it sees the exemplar, so the exemplar sets the style (the paper's Figure 15 use). The code is drawn
``z = mu + eps · exp(logvar / 2)`` in both, as the released test does (``inference_z: sample``); ``mean`` uses
``mu``. Each iteration is one generator step (generator + encoder), then one discriminator step on a new,
gradient-free sample from the updated generator (``compute_discriminator_loss``). Adam with β = (0, 0.9);
TTUR (the released default): generator + encoder at lr/2, discriminator at 2·lr; ``--niter`` constant epochs, then
a linear decay over ``--niter_decay``.

The generator's parameter-free norm is BatchNorm (``--norm_G spectralspadesyncbatch3x3``; its running statistics
serve in evaluation); on several devices ``trainer.sync_batchnorm=true`` makes it the released synchronised one.

``use_vae: false`` is the released models' layout (no encoder; the generator starts from the resized semantics):
the exemplar is then not used, which the protocol records. The released ade20k model reads ADE20K's unknown class in
the last channel (``data/ade20k_dataset.py``: ``label - 1``, then -1 -> ``label_nc``), where this suite's one-hot
labels have it first: ``unknown_label_last`` (``auto``: a released model on 151-channel labels) moves channel 0 last
wherever the model reads semantics (generator and discriminator).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from midms.baselines.spade.encoder import StyleEncoder
from torch import Tensor

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.models.base import plain
from midms.models.gan import AlternatingGAN
from midms.nn import losses
from midms.nn.blocks import init_weights
from midms.nn.discriminator import MultiscaleDiscriminator
from midms.nn.generator import SPADEGenerator, require_image_size
from midms.nn.vgg import VGG19Features
from midms.training.schedules import linear_decay

log = logging.getLogger(__name__)

#: the released VGGLoss's slices end at these layers
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

#: loss weights and schedule (``options/train_options.py`` of the released code)
DEFAULT_SETTINGS: dict[str, Any] = {
    "lambda_feat": 10.0,
    "lambda_vgg": 10.0,
    "lambda_kld": 0.05,
    "kld_reference_batch": 4,  # the released runs' per-GPU batch (--batchSize 32 on 8 GPUs): the KL sum's scale
    "reconstruction_target": "image",  # image | target (the synthetic data's ground truth)
    "niter": 50,
    "niter_decay": 0,
}
INFERENCE_Z = ("sample", "mean")
#: ADE20K's one-hot labels: 150 classes and the unknown class
ADE20K_CHANNELS = 151


class SPADEModel(AlternatingGAN):
    """SPADE (CVPR 2019). Networks: ``generator``, ``encoder`` (with ``use_vae``), ``discriminator``.

    Args:
        data_spec: from the runner; ``semantic_nc`` and ``image_size`` size the networks.
        ngf, ndf, spade_hidden: widths (paper: 64, 64, 128); the encoder's width is ``ngf``, as released.
        use_vae: the style encoder (``--use_vae``); without it the exemplar is not used.
        z_dim: the style code's size (256).
        encoder_size: the encoder's input size (the released 256; the layer count follows).
        settings: per-dataset loss and schedule settings (keys of :data:`DEFAULT_SETTINGS`).
        vgg_weights: ``"torchvision"`` (torchvision's ImageNet VGG19, as released), the path of a torchvision-layout
            VGG19 file, ``"domain"`` (a VGG19 of ``vgg_widths`` trained on the synthetic training split:
            :mod:`midms.nn.domain_vgg`), or ``"random"``: a random VGG19 of ``vgg_widths`` for tests and tiny CPU
            runs (logged as a warning and recorded in :attr:`protocol`); None: no loss network, for evaluation only
            (``train=false``).
        lr: the released base rate (2e-4); ``ttur``: generator at lr/2 and discriminator at 2·lr, else both at lr.
        inference_z: ``sample`` (the released test) or ``mean`` (the encoder's mean: deterministic outputs).
        pretrained: a folder with a released ``latest_net_G.pth`` (and ``latest_net_E.pth`` with ``use_vae``),
            loaded strictly (:mod:`.released`); the files' SHA-256 go into :attr:`protocol`.
    """

    def __init__(
        self,
        data_spec: DataSpec,
        ngf: int = 64,
        ndf: int = 64,
        spade_hidden: int = 128,
        use_vae: bool = True,
        z_dim: int = 256,
        encoder_size: int = 256,
        settings: Mapping[str, Any] | None = None,
        vgg_weights: str | None = "torchvision",
        vgg_widths: list[int] | None = None,
        lr: float = 2e-4,
        ttur: bool = True,
        init_gain: float = 0.02,
        inference_z: str = "sample",
        pretrained: str | None = None,
        unknown_label_last: bool | str = "auto",
        cache_dir: str | None = None,
        domain_training: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(data_spec)
        require_image_size("spade", data_spec.image_size)
        settings, vgg_widths, domain_training = plain(settings), plain(vgg_widths), plain(domain_training)
        unknown = set(settings or {}) - DEFAULT_SETTINGS.keys()
        if unknown:
            raise UserError(f"model=spade: unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
        if inference_z not in INFERENCE_Z:
            raise UserError(f"model.inference_z must be one of {INFERENCE_Z}, got {inference_z!r}")
        self.settings = {**DEFAULT_SETTINGS, **dict(settings or {})}
        self.save_hyperparameters(ignore=["data_spec"])
        self.automatic_optimization = False
        self.lr, self.ttur, self.inference_z = lr, ttur, inference_z
        nc = data_spec.semantic_nc
        if unknown_label_last == "auto":  # the released ade20k model on ADE20K labels (150 classes + unknown)
            unknown_label_last = bool(pretrained) and nc == ADE20K_CHANNELS
        self.unknown_label_last = bool(unknown_label_last)
        self.generator = SPADEGenerator(
            nc,
            ngf=ngf,
            spade_hidden=spade_hidden,
            norm="batch",
            padding="zeros",
            z_dim=z_dim if use_vae else None,
            image_size=data_spec.image_size,
        )
        self.encoder = StyleEncoder(ngf, z_dim, encoder_size) if use_vae else None
        self.discriminator = MultiscaleDiscriminator(nc + 3, ndf=ndf, padding=2, use_attention=False)
        for net in (self.generator, self.encoder, self.discriminator):
            if net is not None:
                init_weights(net, init_gain)
        # None: evaluation only (train=false): the losses' VGG19 is neither built nor needed
        self.cache_dir, self.domain_training = cache_dir, domain_training
        if vgg_weights == "domain":  # SPADE feeds [-1, 1] images, the domain network's own range
            from midms.nn.domain_vgg import untrained

            self.vgg = untrained(VGG_LAYERS, vgg_widths, preprocess="none")
        else:
            self.vgg = self._build_vgg(vgg_weights, vgg_widths) if vgg_weights is not None else None
        self.protocol: dict[str, Any] = {
            "model": "spade",
            "use_vae": use_vae,
            "inference_z": inference_z if use_vae else None,
            "vgg_weights": self.vgg.weights_id if self.vgg is not None else None,
            "settings": dict(self.settings),
            "unknown_label_last": self.unknown_label_last,
        }
        if not use_vae:
            self.protocol["note"] = "use_vae=false: no style encoder; the exemplar is not used"
        if self.vgg is not None and self.vgg.weights_id == "random":
            self.protocol["warning"] = "VGG19 losses use RANDOM weights (vgg_weights=random): not the published method"
        if pretrained:
            from midms.baselines.spade.released import load_released

            self.protocol["pretrained"] = {"folder": str(pretrained), **load_released(self, pretrained)}

    @staticmethod
    def _build_vgg(weights: str, widths: list[int] | None) -> VGG19Features:
        if str(weights) == "random":
            log.warning(
                "model=spade: vgg_weights=random — the VGG loss uses a randomly initialised VGG19. Only for tests and "
                "tiny CPU runs; results are not the published method."
            )
            return VGG19Features(VGG_LAYERS, weights=None, widths=widths, preprocess="none")
        if widths is not None:
            raise UserError("model.vgg_widths is only for vgg_weights=random; pretrained weights set their own widths")
        try:
            vgg = VGG19Features(VGG_LAYERS, weights=weights, preprocess="none")
        except UserError as e:
            raise UserError(
                f"model=spade needs torchvision's ImageNet VGG19 for its VGG loss. {e} (Set model.vgg_weights="
                f"torchvision or to the path of a torchvision-layout vgg19 file.)"
            ) from e
        if vgg.layout == "caffe":
            raise UserError(
                f"model=spade: {weights} is a Caffe-layout VGG19 (CoCosNet's vgg19_conv.pth); SPADE's VGG loss is "
                f"torchvision's ImageNet VGG19 on unnormalised [-1, 1] images. Set model.vgg_weights=torchvision."
            )
        return vgg

    # -- the networks -------------------------------------------------------------------------------

    def encode(self, image: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, mu, logvar)`` of an image; ``z = mu + eps · exp(logvar / 2)``, or ``mu`` without ``sample``."""
        mu, logvar = self.encoder(image)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return z, mu, logvar

    def model_semantics(self, semantics: Tensor) -> Tensor:
        """The semantics in the channel order the networks read (``unknown_label_last``: channel 0 moved last)."""
        return torch.cat([semantics[:, 1:], semantics[:, :1]], dim=1) if self.unknown_label_last else semantics

    def discriminate(self, semantics: Tensor, fake: Tensor, real: Tensor) -> tuple[list, list]:
        return super().discriminate(self.model_semantics(semantics), fake, real)

    def generate(self, semantics: Tensor, style_image: Tensor, sample: bool = True) -> tuple[Tensor, Tensor | None]:
        """The output and the KL term (unweighted; ``None`` without the encoder)."""
        semantics = self.model_semantics(semantics)
        if self.encoder is None:
            return self.generator(semantics), None
        z, mu, logvar = self.encode(style_image, sample)
        return self.generator(semantics, z), losses.kl_divergence(mu, logvar)

    @torch.no_grad()
    def translate(self, batch: dict) -> Tensor:
        fake, _ = self.generate(batch["semantics"], batch["exemplar"], sample=self.inference_z == "sample")
        return fake.clamp(-1, 1)

    # -- losses -------------------------------------------------------------------------------------

    def reconstruction(self, batch: dict) -> Tensor:
        """The ground truth: the input's own photo, or the synthetic data's ``target``."""
        if self.settings["reconstruction_target"] == "target":
            if "target" not in batch:
                raise UserError("reconstruction_target=target needs a dataset with a ground truth (synthetic)")
            return batch["target"]
        return batch["image"]

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The weighted generator-side terms (keys as in the module docstring) and the output (``fake``)."""
        s = self.settings
        real = self.reconstruction(batch)
        fake, kld = self.generate(batch["semantics"], real)
        terms: dict[str, Tensor] = {}
        if kld is not None:  # a sum over the local batch, brought to the released per-GPU batch's scale
            terms["kld"] = kld * s["lambda_kld"] * s["kld_reference_batch"] / batch["semantics"].shape[0]
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake, real)
        terms["gan"] = losses.hinge_g_loss(pred_fake)
        if s["lambda_feat"] > 0:
            terms["gan_feat"] = losses.gan_feature_matching_loss(pred_fake, pred_real) * s["lambda_feat"]
        if s["lambda_vgg"] > 0:
            fake_feats, real_feats = self.vgg(fake), self.vgg(real)
            terms["vgg"] = (
                losses.vgg_feature_matching_loss(
                    [fake_feats[k] for k in VGG_LAYERS], [real_feats[k] for k in VGG_LAYERS]
                )
                * s["lambda_vgg"]
            )
        return terms, {"fake": fake}

    def discriminator_losses(self, batch: dict, fake: Tensor | None = None) -> dict[str, Tensor]:
        """The hinge terms on a new sample (``fake`` of the generator step is not reused, as the released code)."""
        real = self.reconstruction(batch)
        with torch.no_grad():  # a new sample from the updated generator, as compute_discriminator_loss
            fake, _ = self.generate(batch["semantics"], real)
        pred_fake, pred_real = self.discriminate(batch["semantics"], fake, real)
        return {
            "d_fake": losses.hinge_d_loss(pred_fake, real=False),
            "d_real": losses.hinge_d_loss(pred_real, real=True),
        }

    # -- Lightning ----------------------------------------------------------------------------------

    def configure_optimizers(self):
        g_lr, d_lr = (self.lr / 2, self.lr * 2) if self.ttur else (self.lr, self.lr)
        g_params = list(self.generator.parameters())
        if self.encoder is not None:
            g_params += list(self.encoder.parameters())
        opt_g = torch.optim.Adam(g_params, lr=g_lr, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=(0.0, 0.9))
        factor = linear_decay(self.settings["niter"], self.settings["niter_decay"])
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedulers
