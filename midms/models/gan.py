"""The training loop the GAN baselines share: one generator step, then one discriminator step, per batch.

SPADE (https://github.com/NVlabs/SPADE, ``trainers/pix2pix_trainer.py``) and CoCosNet
(https://github.com/microsoft/CoCosNet, the same trainer) alternate the two updates on each batch, with separate
Adam optimisers (TTUR), a learning-rate step at each epoch's end, and the discriminator seeing fake and real images
in one batch. A subclass builds ``self.discriminator`` and implements :meth:`generator_losses`,
:meth:`discriminator_losses` and ``configure_optimizers`` (generator side first, discriminator second).
"""

from __future__ import annotations

import torch
from torch import Tensor

from midms.errors import UserError
from midms.models.base import TranslationModel


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
