"""The training loop the GAN baselines share: one generator step, then one discriminator step, per batch.

SPADE (https://github.com/NVlabs/SPADE, ``trainers/pix2pix_trainer.py``) and CoCosNet
(https://github.com/microsoft/CoCosNet, the same trainer) alternate the two updates on each batch, with separate
Adam optimisers (TTUR), a learning-rate step at each epoch's end, and the discriminator seeing fake and real images
in one batch. A subclass builds ``self.discriminator`` and implements :meth:`generator_losses`,
:meth:`discriminator_losses` and ``configure_optimizers`` (generator side first, discriminator second).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from midms.errors import UserError
from midms.models.base import TranslationModel
from midms.nn.vgg import VGG19Features

log = logging.getLogger(__name__)


def build_loss_vgg(
    model: str, weights: str | None, widths: list[int] | None, layers: Sequence[str]
) -> VGG19Features | None:
    """The VGG19 of a GAN's training losses, for models that feed it [0, 1] images (CoCosNet, DynaST).

    ``weights``: ``"torchvision"``, a path (the Caffe ``vgg19_conv.pth`` of the released codes),
    ``"domain"`` (:mod:`midms.nn.domain_vgg`: built random here, trained when training starts), ``"random"`` (a He-
    initialised network of ``widths``, for tests and tiny CPU runs; logged as a warning), or None (evaluation only:
    no loss network)."""
    if weights is None:
        return None
    if weights == "domain":  # the domain network reads [-1, 1]: "signed" maps the [0, 1] input there
        from midms.nn.domain_vgg import untrained

        return untrained(layers, widths, preprocess="signed")
    if str(weights) == "random":
        log.warning(
            "model=%s: vgg_weights=random — the VGG19 losses use a randomly initialised network. Only for tests and "
            "tiny CPU runs; results are not the published method.",
            model,
        )
        vgg = VGG19Features(layers, weights=None, widths=widths)
        for conv in vgg.convs.values():  # He initialisation keeps the feature scale through 16 ReLU layers
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.zeros_(conv.bias)
        return vgg
    if widths is not None:
        raise UserError("model.vgg_widths is only for vgg_weights=random; pretrained weights set their own widths")
    try:
        return VGG19Features(layers, weights=weights)
    except UserError as e:
        raise UserError(
            f"model={model} needs a pretrained VGG19 for its training losses. {e} "
            "(Set model.vgg_weights=torchvision or to the path of vgg19_conv.pth.)"
        ) from e


def random_vgg_warning(vgg: VGG19Features | None) -> dict[str, str]:
    """``{"warning": ...}`` for a protocol when the losses' VGG19 is random, else ``{}``."""
    if vgg is not None and vgg.weights_id == "random":
        return {"warning": "VGG19 losses use RANDOM weights (vgg_weights=random): not the published method"}
    return {}


def paired_ground_truth(batch: dict, target: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """The ground truth of CoCosNet-style paired losses and the per-sample paired flags (B).

    ``target="target"``: the synthetic data's true translation, every sample paired. ``"image"``: the input's own
    photo, paired where the dataset's ``paired`` flag says so (DeepFashion: another view of the same garment), else
    where the exemplar is the photo itself."""
    if target == "target":
        if "target" not in batch:
            raise UserError("reconstruction_target=target needs a dataset with a ground truth (synthetic)")
        return batch["target"], torch.ones(batch["target"].shape[0], device=device)
    if "paired" in batch:
        return batch["image"], batch["paired"].to(device=device, dtype=torch.float32)
    paired = [a == b for a, b in zip(batch["id"], batch["exemplar_id"], strict=True)]
    return batch["image"], torch.tensor(paired, dtype=torch.float32, device=device)


class AlternatingGAN(TranslationModel):
    """Manual optimisation: ``generator_losses`` -> generator step (D frozen) -> ``discriminator_losses`` -> D step."""

    def generator_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The weighted generator-side terms and the forward outputs (at least ``fake``)."""
        raise NotImplementedError

    def discriminator_losses(self, batch: dict, fake: Tensor) -> dict[str, Tensor]:
        """The discriminator's terms; ``fake`` is the generator step's output."""
        raise NotImplementedError

    def discriminate(self, semantics: Tensor, fake: Tensor, real: Tensor) -> tuple[list, list]:
        """Fake and real through D in one batch (as the released codes); returns (fake maps, real maps)."""
        both = torch.cat([torch.cat([semantics, fake], 1), torch.cat([semantics, real], 1)], 0)
        pred = self.discriminator(both)
        n = fake.shape[0]
        return [[t[:n] for t in scale] for scale in pred], [[t[n:] for t in scale] for scale in pred]

    #: ``vgg_weights=domain``: the domain network's training budget and cache (set by the subclass)
    domain_training = None
    cache_dir: str | None = None

    def on_train_start(self) -> None:
        """``vgg_weights=domain``: the domain network trained on the training split (or read from the cache)."""
        if self.vgg is None or self.vgg.weights_id != "domain":
            return
        from midms.nn.domain_vgg import load_into, prepare_for

        widths = [self.vgg.convs[f"conv{block}_1"].out_channels for block in range(1, 6)]
        load_into(self.vgg, prepare_for(self, widths, self.cache_dir, self.domain_training))
        self.vgg.to(self.device)

    def on_fit_start(self) -> None:
        if getattr(self, "vgg", False) is None:
            raise UserError(
                f"{type(self).__name__} was built without the VGG19 of its training losses (model.vgg_weights is null, "
                "as train=false sets it): it can evaluate but not train. Train with train=true."
            )

    def _update(self, opt, terms: dict[str, Tensor]) -> Tensor:
        """One optimiser step on the sum of ``terms`` (returned); gradients are not held through the other step."""
        loss = torch.stack(list(terms.values())).sum()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        opt.zero_grad()
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()

        self.toggle_optimizer(opt_g)  # D frozen
        g_terms, out = self.generator_losses(batch)
        g_loss = self._update(opt_g, g_terms)
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)  # the generator side frozen
        d_terms = self.discriminator_losses(batch, out["fake"].detach())
        d_loss = self._update(opt_d, d_terms)
        self.untoggle_optimizer(opt_d)

        logged = {f"train/{k}": v.detach() for k, v in {**g_terms, **d_terms}.items()}
        logged.update({"train/g_loss": g_loss.detach(), "train/d_loss": d_loss.detach()})
        self.log_dict(logged, on_step=True, on_epoch=True, sync_dist=True, batch_size=out["fake"].shape[0])

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers():
            scheduler.step()
