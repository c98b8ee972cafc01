"""``model=midms``: the MIDMs LightningModule (training losses, phases, ``translate`` and ``warp``).

Seo, Lee, Cho, Lee, Kim, "MIDMs: Matching Interleaved Diffusion Models for Exemplar-based Image
Translation", AAAI 2023 (arXiv:2209.11047); official code https://github.com/cvlab-kaist/MIDMs. Training
follows ``utils_training/optimize.py`` and the ``e2e_recurrent`` branch of ``models/midms.py``:

- matching features of the input (semantic encoder -> trunk -> theta), of the source and exemplar latents
  (real-image encoder -> trunk -> phi); the exemplar and source latents are soft-warped onto the input;
- losses: domain alignment between input and source encoder features (×10); warping cycle consistency
  (L1, forward then backward warp of the exemplar latent); VGG feature loss between the decoded warped
  source and the source over relu1_2 … relu5_2 (weights 1/32 … 1); perceptual L1 between the decoded
  warped exemplar and the source at one layer (edges: relu4_2 × 0.002, labels: relu5_2 × 0.05); the
  diffusion loss on the source latent; the iterative cycle losses; a contextual loss against the exemplar
  after warm-up (MIDMs' own form: only output positions with a best affinity of at least 0.3, pooled over
  the batch; :func:`midms.nn.losses.contextual_loss_midms`); for segmentation inputs the warped-label NLL
  (×100) during warm-up;
- during warm-up (``warmup_iter``) the diffusion UNet is frozen and no DDIM step runs (the official
  ``t_list = []``); the diffusion loss is then the MSE between the warped and the true source latent;
- after warm-up: the interleaved DDIM steps on a ``4 × interleave_steps`` grid, with re-matching before the
  2nd and 3rd step (both exemplar and source paths), the x0-prediction loss of the UNet on the source latent
  at one random interleaved step, and the UNet trained end to end.

Without a pretrained LDM (``prior.train``), the prior stage of :mod:`.prior_training` first trains the
autoencoder and the latent UNet on the training images (once per dataset and settings; cached), as an LDM
is trained before MIDMs starts from it. Phases by optimiser step (``global_step``): the MIDMs warm-up, then
end-to-end; ``warmup_iter`` is a step count (an int), or a fraction (a float <= 1.0) of the whole run.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.models.base import TranslationModel, plain
from midms.models.midms.encoders import MatchingNetwork
from midms.models.midms.matching import (
    TEMPERATURE,
    blend,
    confidence_mask,
    cycle_error,
    matching_features,
    soft_flows,
    soft_warp_chunked,
)
from midms.models.midms.prior import build_prior
from midms.models.midms.prior_training import PriorStage, prepare_prior
from midms.models.midms.sampler import (
    InterleavedSampler,
    InterleaveSchedule,
    add_noise,
    ddim_step,
    ddim_update,
    reinject,
)
from midms.nn.blocks import l2_normalize

log = logging.getLogger(__name__)

VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
FEAT_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


#: training settings and their defaults (the official ``train.py`` options; ``conf/model/midms.yaml`` sets them)
DEFAULT_TRAINING: dict[str, Any] = {
    "lr": 3e-6,
    "lr_diffusion": 3e-6,
    "weight_decay": 0.05,
    "lr_milestones": [10, 12, 14, 24],
    "lr_gamma": 0.3,
    "warmup_iter": 10000,
    "interleave_steps": 4,
    "rematch_at": [1, 2],
    "domain_weight": 10.0,
    "perceptual": "auto",
    "seg_weight": "auto",
}
#: added to the norm by MIDMs' L2 normalisation of matching features (the official ``feature_normalize``)
NORM_EPS = 1e-6


def _check_image_size(image_size: int, prior) -> None:
    """The autoencoder halves the image ``f`` times and the UNet the latent ``u`` times: sizes must divide."""
    down = 2 ** (len(prior.vae.config.block_out_channels) - 1)
    unet = 2 ** (len(prior.unet.config.block_out_channels) - 1)
    if image_size % (down * unet):
        raise UserError(
            f"model=midms cannot translate {image_size} px images with this prior: its autoencoder shrinks images "
            f"{down}× and its UNet the latents another {unet}×, so the image size must be a multiple of "
            f"{down * unet}. Set dataset.image_size to a multiple of {down * unet} (e.g. 64 or 256)."
        )


class MIDMs(TranslationModel):
    """MIDMs on a latent diffusion prior.

    Args:
        data_spec: from the runner (``semantic_nc``, ``image_size``, ``num_classes``).
        prior: kwargs of :func:`.prior.build_prior` (``source``, ``path``, ``vae``/``unet`` sizes, ...).
        matching: kwargs of :class:`.matching.MatchingNetwork` (without ``semantic_nc``/``latent_channels``).
        sampler: kwargs of :class:`.sampler.InterleaveSchedule` (inference).
        training: optimiser, phases and loss settings (see ``conf/model/midms.yaml``).
        vgg: ``weights`` (``torchvision``, a path, ``domain``, or ``null`` for a random network) and ``widths``;
            ``domain``: a VGG19 of ``widths`` trained on the synthetic training split (:mod:`midms.nn.domain_vgg`,
            with ``vgg.training`` and cached under ``loss_network_cache``).
        temperature, chunk: softmax temperature and query-row block of the chunked correlation.
        cycle_mode, cycle_threshold: see :mod:`.confidence`.
        seed: seed of the sampling noise in ``translate``.
        pretrained: MIDMs' released checkpoint (``midms_celebA_finetuned.pth``): its fine-tuned LDM becomes the
            prior (``prior`` is then not built) and its matching networks are loaded strictly (:mod:`.released`).
        pretrained_ldm_config: the release's LDM ``config.yaml`` (default: ``pretrained/config.yaml`` next to it).
        prior_stage: budget of the prior stage (:class:`.prior_training.PriorStage`), used when ``prior.train``.
        cache_dir: where trained priors are cached (``None``: not cached).
    """

    can_warp = True

    def __init__(
        self,
        data_spec: DataSpec,
        prior: Mapping[str, Any] | None = None,
        matching: Mapping[str, Any] | None = None,
        sampler: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        vgg: Mapping[str, Any] | None = None,
        temperature: float = TEMPERATURE,
        chunk: int = 1024,
        cycle_mode: str = "official",
        cycle_threshold: float = 0.5,
        seed: int = 0,
        pretrained: str | None = None,
        pretrained_ldm_config: str | None = None,
        prior_stage: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        loss_network_cache: str | None = None,
    ) -> None:
        super().__init__(data_spec)
        # plain containers: the hyper-parameters go into checkpoints that torch.load(weights_only=True) reads
        prior, matching, sampler, training, vgg, prior_stage = (
            plain(v) for v in (prior, matching, sampler, training, vgg, prior_stage)
        )
        self.save_hyperparameters(ignore=["data_spec"])
        self.automatic_optimization = False
        prior_cfg = dict(prior or {})
        self.train_prior = bool(prior_cfg.pop("train", False)) and not pretrained
        self._prior_cfg, self._cache_dir = prior_cfg, cache_dir
        self._loss_network_cache = loss_network_cache
        self.prior_stage = PriorStage(**dict(prior_stage or {}))
        self._prior_ready = not self.train_prior  # set once the prior stage ran or a checkpoint brought the prior
        release = None
        if pretrained:
            from midms.models.midms.released import read_release

            release = read_release(pretrained, pretrained_ldm_config)
            self.prior = release.prior
        else:
            self.prior = build_prior(**prior_cfg)
        _check_image_size(data_spec.image_size, self.prior)
        # everything trainable in some phase requires grad at construction (DDP registers those parameters);
        # each training step then freezes what its phase does not train (see _set_trainable)
        self.prior.vae.requires_grad_(False)
        self.prior.unet.requires_grad_(True)
        self.net = MatchingNetwork(data_spec.semantic_nc, self.prior.latent_channels, **dict(matching or {}))
        if release is not None:
            release.load_matching(self.net, str(pretrained))
        sampler = dict(sampler or {})
        sampler["rematch_at"] = tuple(sampler.get("rematch_at", (1, 2)))
        self.schedule = InterleaveSchedule(**sampler)
        unknown = set(training or {}) - DEFAULT_TRAINING.keys()
        if unknown:
            raise UserError(
                f"model=midms: unknown training settings {sorted(unknown)} (model.module.training.*); "
                f"known: {sorted(DEFAULT_TRAINING)}"
            )
        self.cfg = {**DEFAULT_TRAINING, **dict(training or {})}
        if any(not m > 0 for m in self.cfg["lr_milestones"]):
            raise UserError(
                f"model=midms: lr_milestones {self.cfg['lr_milestones']} must be > 0: epochs (ints) or fractions "
                f"of the run (floats <= 1.0)"
            )
        self.segmentation = data_spec.num_classes is not None and data_spec.semantic_nc == data_spec.num_classes
        perc = self.cfg["perceptual"]
        if perc == "auto":
            perc = {"layer": "relu5_2", "weight": 0.05} if self.segmentation else {"layer": "relu4_2", "weight": 0.002}
        self.perc_layer, self.perc_weight = perc["layer"], float(perc["weight"])
        seg_w = self.cfg["seg_weight"]
        self.seg_weight = (100.0 if self.segmentation else 0.0) if seg_w == "auto" else float(seg_w)
        self.temperature, self.chunk = temperature, chunk
        self.cycle_mode, self.cycle_threshold = cycle_mode, cycle_threshold
        self.seed = seed
        vgg = dict(vgg or {"weights": "torchvision"})
        self._domain_training = vgg.pop("training", None) or {}
        self._vgg_cfg = vgg
        self.protocol: dict[str, Any] = {
            "model": "midms",
            "prior": prior_cfg.get("source", "random") if not self.train_prior else "trained on the dataset",
            "vgg_weights": str(vgg.get("weights") or "random"),
        }
        if release is not None:
            self.protocol["prior"] = "the release's fine-tuned LDM"
            self.protocol["pretrained"] = {"file": str(pretrained), **release.sha256}
        warnings = []
        if not vgg.get("weights"):
            warnings.append("VGG19 losses use RANDOM weights (vgg.weights=null): not the published method")
        if self.train_prior:
            warnings.append("the latent prior is trained on the dataset (no pretrained LDM): not the published method")
        if warnings:
            self.protocol["warning"] = "; ".join(warnings)
        self.__dict__["_vgg"] = None  # built lazily, kept out of the state dict: only training needs VGG19
        self.__dict__["_domain_state"] = None  # vgg.weights=domain: the trained convolutions (on_train_start)

    # -- helpers ----------------------------------------------------------------------------------

    def soft_warp(self, query: Tensor, key: Tensor, values: Tensor) -> Tensor:
        """Warp key-aligned ``values`` onto the query grid through the correlation of the two feature maps
        (:func:`~midms.models.midms.matching.soft_warp_chunked`, memory-linear)."""
        return soft_warp_chunked(query, key, values, self.temperature, self.chunk)

    @property
    def vgg(self):
        if self._vgg is None:
            from midms.nn.vgg import VGG19Features

            if self._vgg_cfg.get("weights") == "domain":
                from midms.nn.domain_vgg import load_into, untrained

                if self._domain_state is None:
                    raise RuntimeError("vgg.weights=domain: the domain network is prepared when training starts")
                net = untrained(VGG_LAYERS, self._vgg_cfg.get("widths"), preprocess="signed")  # MIDMs feeds [0, 1]
                load_into(net, self._domain_state)
            else:
                net = VGG19Features(VGG_LAYERS, **self._vgg_cfg)
            self.__dict__["_vgg"] = net.to(self.device)
        return self._vgg

    def _prepare_domain_vgg(self) -> None:
        """``vgg.weights=domain``: the domain network trained on the training split, or read from the cache."""
        from midms.nn.domain_vgg import prepare_for

        widths = self._vgg_cfg.get("widths")
        self.__dict__["_domain_state"] = prepare_for(self, widths, self._loss_network_cache, self._domain_training)

    def _steps(self, value: float | int) -> int:
        """A step count: an int as it is, a float (at most 1.0) as that fraction of the run's steps."""
        if isinstance(value, float) and value <= 1:
            return int(value * self.trainer.estimated_stepping_batches)
        return int(value)

    def _milestone_step(self, value: float | int) -> int:
        """A learning-rate milestone in optimiser steps: an int counts epochs (the official ``--step``), a float
        (at most 1.0) is that fraction of the run."""
        if isinstance(value, float) and value <= 1:
            return self._steps(value)
        return int(value) * int(self.trainer.num_training_batches)

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier after ``step`` optimiser steps: ``lr_gamma`` per milestone passed."""
        if step == 0:  # every milestone is after the first step (checked in __init__)
            return 1.0
        passed = sum(step >= self._milestone_step(m) for m in self.cfg["lr_milestones"])
        return float(self.cfg["lr_gamma"]) ** passed

    def phase(self) -> str:
        """``warmup`` or ``e2e`` at the current optimiser step."""
        return "warmup" if self.global_step < self._steps(self.cfg["warmup_iter"]) else "e2e"

    # -- the prior stage ---------------------------------------------------------------------------------

    def on_train_start(self) -> None:
        """Without a pretrained LDM, train the prior (or load it from the cache) before the MIDMs phases."""
        if self._vgg_cfg.get("weights") == "domain" and self._domain_state is None:
            self._prepare_domain_vgg()
        if self._prior_ready:
            return
        from torch.utils.data import DataLoader

        start = time.perf_counter()
        dataset = self.trainer.train_dataloader.dataset
        loader = DataLoader(dataset, batch_size=64, shuffle=False)  # a fixed order: the cache's content is fixed
        # Trained (or loaded) on a copy, then copied in place: under DDP the reducer watches this module's
        # parameters, and a backward pass outside a training step (the prior stage's) corrupts its bookkeeping.
        staged = copy.deepcopy(self.prior)
        info = prepare_prior(
            staged,
            ({"image": b["image"]} for b in loader),
            self.prior_stage,
            self._cache_dir,
            getattr(dataset, "dataset_key", None),
            self._prior_cfg,
        )
        self.prior.load_state_dict(staged.state_dict())
        self.prior.scale_factor = staged.scale_factor
        del staged
        self.prior.to(self.device)
        self.stage_seconds["prior"] = time.perf_counter() - start
        summary = {k: info[k] for k in ("autoencoder_psnr", "scale_factor", "seconds") if k in info}
        self.protocol["prior_stage"] = {**summary, "cache": info.get("cache")}
        for logger in self.loggers:  # the stage's outcome, before the first MIDMs step (its curves: prior.json)
            logger.log_metrics({f"prior/{k}": float(v) for k, v in summary.items()}, step=0)
        self._prior_ready = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["midms_prior"] = {
            "scale_factor": self.prior.scale_factor,
            "ready": self._prior_ready,
            "summary": self.protocol.get("prior_stage"),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("midms_prior")
        if saved:  # the checkpoint's state dict holds the trained prior; its latent scale and record are kept here
            self.prior.scale_factor = float(saved["scale_factor"])
            self._prior_ready = bool(saved["ready"])
            if saved.get("summary"):  # a resumed run reports the prior it continues with
                self.protocol["prior_stage"] = dict(saved["summary"])

    def match(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """First matching: latents, semantics at latent resolution and normalised matching features."""
        ref_z = self.prior.encode(batch["exemplar"]).detach()
        size = ref_z.shape[2:]
        sem = F.interpolate(batch["semantics"], size=size, mode="nearest")
        ref_sem = F.interpolate(batch["exemplar_semantics"], size=size, mode="nearest")
        trg_enc, trg_out = self.net.input_features(sem)
        ref_enc, ref_out = self.net.image_features(ref_z, ref_sem)
        return dict(
            ref_z=ref_z, sem=sem, ref_sem=ref_sem, trg_enc=trg_enc, trg_out=trg_out, ref_enc=ref_enc, ref_out=ref_out
        )

    def rematch(self, x0: Tensor, trg_enc: Tensor, key_enc: Tensor, key_z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Re-match an x0 prediction to the exemplar: (re-warped latent, confidence mask, iteration features)."""
        q = self.net.iteration_features(x0, trg_enc)
        k = matching_features(key_enc)
        new = self.soft_warp(q, k, key_z)
        with torch.no_grad():
            map_fw, _, flow_fw, flow_bw = soft_flows(q.detach(), k.detach(), self.temperature, self.chunk)
            mask = confidence_mask(cycle_error(map_fw, flow_fw, flow_bw, self.cycle_mode), self.cycle_threshold)
        return new, mask, q

    # -- inference ----------------------------------------------------------------------------------

    @torch.no_grad()
    def translate(self, batch: dict) -> Tensor:
        return self._translate(self.match(batch))

    @torch.no_grad()
    def translate_and_warp(self, batch: dict, values: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The output and the warp of ``values`` from one matching."""
        m = self.match(batch)
        return self._translate(m), (None if values is None else self._warp(m, values))

    def _translate(self, m: dict[str, Tensor]) -> Tensor:
        x0 = self.soft_warp(m["trg_out"], m["ref_out"], m["ref_z"])  # B×c×h×w warped exemplar latent
        sampler = InterleavedSampler(self.schedule, self.prior.scheduler(), self.prior.scheduler())

        def rematch(x0_pred: Tensor, _i: int) -> tuple[Tensor, Tensor]:
            new, mask, _ = self.rematch(x0_pred, m["trg_enc"], m["ref_enc"], m["ref_z"])
            return new, mask

        gen = torch.Generator(device=x0.device).manual_seed(self.seed)
        z = sampler(x0, self.prior.eps, rematch, generator=gen)
        return self.prior.decode(z).clamp(-1, 1)

    @torch.no_grad()
    def warp(self, batch: dict, values: Tensor | None = None) -> Tensor:
        values = batch["exemplar_semantics"] if values is None else values
        return self._warp(self.match(batch), values)

    def _warp(self, m: dict[str, Tensor], values: Tensor) -> Tensor:
        small = F.interpolate(values.float(), size=m["ref_z"].shape[2:], mode="nearest")
        warped = self.soft_warp(m["trg_out"], m["ref_out"], small)
        return F.interpolate(warped, size=values.shape[2:], mode="bilinear", align_corners=False)

    # -- training -----------------------------------------------------------------------------------

    def configure_optimizers(self):
        cfg = self.cfg
        opt = torch.optim.AdamW(
            [
                {"params": list(self.net.parameters()), "lr": cfg["lr"]},
                {"params": list(self.prior.unet.parameters()), "lr": cfg["lr_diffusion"]},
            ],
            weight_decay=cfg["weight_decay"],
        )
        # stepped after every optimiser step: a milestone of m epochs falls after m·(batches per epoch) steps,
        # as the official MultiStepLR stepped at each epoch's end
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
        return [opt], [sched]

    def _set_trainable(self, phase: str) -> None:
        """Warm-up: matching networks (the iteration encoder is unused, the UNet frozen). End to end: matching
        networks + UNet. The autoencoder stays frozen and in eval mode. Under DDP use
        ``trainer.strategy=ddp_find_unused_parameters_true``."""
        self.prior.unet.requires_grad_(phase == "e2e")
        self.net.requires_grad_(True)
        self.net.iter_enc.requires_grad_(phase == "e2e")
        self.prior.vae.eval()

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        phase = self.phase()
        self._set_trainable(phase)
        opt = self.optimizers()
        losses = self.midms_losses(batch, phase)
        loss = sum(losses.values())
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.lr_schedulers().step()
        bs = batch["image"].shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=bs)
        return loss.detach()

    def midms_losses(self, batch: dict, phase: str) -> dict[str, Tensor]:
        m = self.match(batch)
        src_z = self.prior.encode(batch["image"]).detach()
        src_enc, src_out = self.net.image_features(src_z, m["sem"])
        ref_z, trg_out, ref_out = m["ref_z"], m["trg_out"], m["ref_out"]
        warped_src = self.soft_warp(trg_out, src_out, src_z)
        warped_ref = self.soft_warp(trg_out, ref_out, ref_z)
        losses: dict[str, Tensor] = {}
        # warping cycle consistency: forward warp of the exemplar latent, then back
        losses["fb"] = F.l1_loss(self.soft_warp(ref_out, trg_out, warped_ref), ref_z)
        if phase == "warmup":
            pred_ref, pred_src = warped_ref, warped_src
            iter_seg = self.soft_warp(trg_out, ref_out, m["ref_sem"]) if self.seg_weight > 0 else None
            losses["diffusion"] = F.mse_loss(warped_src, src_z)
            losses["fb_iter"] = losses["fb"]  # the model-side copy of the cycle loss during warm-up
        else:
            out = self._interleave_train(m, src_z, src_enc, warped_ref, warped_src)
            pred_ref, pred_src, losses["diffusion"], losses["fb_iter"] = out
            iter_seg = None
        a, s = l2_normalize(m["trg_enc"], NORM_EPS), l2_normalize(src_enc, NORM_EPS)
        r = l2_normalize(m["ref_enc"], NORM_EPS).detach()
        losses["domain"] = self.cfg["domain_weight"] * (F.l1_loss(a, s) + F.l1_loss(r * a, r * s))
        img_src, img_ref = self.prior.decode(pred_src), self.prior.decode(pred_ref)
        vgg = self.vgg
        f_wsrc, f_wref = vgg((img_src + 1) / 2), vgg((img_ref + 1) / 2)
        with torch.no_grad():
            f_src, f_ref = vgg((batch["image"] + 1) / 2), vgg((batch["exemplar"] + 1) / 2)
        losses["feat"] = sum(w * F.l1_loss(f_wsrc[k], f_src[k]) for w, k in zip(FEAT_WEIGHTS, VGG_LAYERS, strict=True))
        losses["perceptual"] = self.perc_weight * F.l1_loss(f_wref[self.perc_layer], f_src[self.perc_layer])
        if phase == "warmup" and iter_seg is not None and "labels" in batch:
            losses["warped_seg"] = self.seg_weight * self._seg_loss(iter_seg, batch)
        if phase == "e2e":
            losses["contextual"] = self._contextual(f_wref, f_ref)
        return losses

    def _interleave_train(
        self, m: dict, src_z: Tensor, src_enc: Tensor, pred_ref: Tensor, pred_src: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The official training recursion: 4·k-step grid, its last k steps, re-matching at steps 1 and 2."""
        k = int(self.cfg["interleave_steps"])
        schedule = InterleaveSchedule(ddim_steps=4 * k, interleave_steps=k, rematch_at=tuple(self.cfg["rematch_at"]))
        sched = self.prior.scheduler()
        sched.set_timesteps(schedule.ddim_steps)
        ts, t0 = schedule.unet_timesteps, schedule.noise_timestep
        grid = [t0, *ts]
        ref_z = m["ref_z"]
        x_ref, x_src = add_noise(sched, pred_ref, t0), add_noise(sched, pred_src, t0)
        rand_idx = random.randrange(len(ts))
        fb_iter = src_z.new_zeros(())
        diffusion = src_z.new_zeros(())
        ref_k, src_k = matching_features(m["ref_enc"]), matching_features(src_enc)
        ref_update = None
        for i, t in enumerate(ts):
            if ref_update is not None and i in schedule.rematch_at:  # re-matched before a step, never the first
                new_ref, mask, q = self.rematch(pred_ref, m["trg_enc"], m["ref_enc"], ref_z)
                q_src = self.net.iteration_features(pred_src, m["trg_enc"])
                new_src = self.soft_warp(q_src, src_k, src_z)
                fb_iter = fb_iter + F.l1_loss(self.soft_warp(ref_k, q, new_ref), ref_z)
                fb_iter = fb_iter + F.l1_loss(self.soft_warp(src_k, q_src, new_src), src_z)
                mixed = blend(new_ref, pred_ref, mask if self.schedule.confidence else None)
                x_ref = reinject(ref_update, mixed)
            ref_update = ddim_update(sched, self.prior.eps(x_ref, t), t, x_ref)
            x_ref, pred_ref = ref_update.prev_sample, ref_update.pred_original_sample
            x_src, pred_src = ddim_step(sched, self.prior.eps(x_src, t), t, x_src)
            if i == rand_idx:  # the UNet's own x0 loss on the source latent, noised afresh
                x_orig = add_noise(sched, src_z, grid[i])
                _, x0_orig = ddim_step(sched, self.prior.eps(x_orig, t), t, x_orig)
                diffusion = diffusion + F.mse_loss(x0_orig, src_z)
        return pred_ref, pred_src, diffusion, fb_iter

    def _seg_loss(self, warped_sem: Tensor, batch: dict) -> Tensor:
        """NLL of the warped one-hot exemplar labels against the input labels, at latent resolution; classes
        absent from the exemplar and class 0 are ignored (the official LSUN warped-segmentation loss)."""
        size = warped_sem.shape[2:]
        gt = F.interpolate(batch["labels"][:, None].float(), size=size, mode="nearest").long()[:, 0]
        ref = F.interpolate(batch["exemplar_labels"][:, None].float(), size=size, mode="nearest").long()[:, 0]
        weight = torch.ones_like(gt, dtype=warped_sem.dtype)
        for b in range(gt.shape[0]):
            present = torch.isin(gt[b], torch.unique(ref[b]))
            weight[b] = (present & (gt[b] != 0)).to(weight.dtype)
        nll = F.nll_loss(torch.log(warped_sem + 1e-10), gt, reduction="none")
        return (nll * weight).sum() / (weight.sum() + 1e-5)

    @staticmethod
    def _contextual(f_out: Mapping[str, Tensor], f_ref: Mapping[str, Tensor]) -> Tensor:
        from midms.nn.losses import contextual_loss_midms

        terms: Sequence[tuple[str, int, float]] = (
            ("relu5_2", 1, 8.0),
            ("relu4_2", 1, 4.0),
            ("relu3_2", 2, 2.0),
            ("relu2_2", 4, 1.0),
        )
        total = f_out["relu5_2"].new_zeros(())
        for layer, pool, w in terms:
            a, b = f_out[layer], f_ref[layer]
            if pool > 1:
                a, b = F.avg_pool2d(a, pool), F.avg_pool2d(b, pool)
            total = total + w * contextual_loss_midms(a, b)
        return total
