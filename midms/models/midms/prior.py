"""The latent diffusion prior of MIDMs: a frozen first-stage autoencoder, a latent UNet and a DDIM scheduler.

MIDMs (Seo et al., AAAI 2023, arXiv:2209.11047; https://github.com/cvlab-kaist/MIDMs) runs its matching and
denoising in the latent space of a pretrained LDM (Rombach et al., CVPR 2022): the VQ-f4 autoencoder
(256 px -> 3×64×64) with the CelebA-HQ LDM UNet, or the KL-f8 autoencoder of the LSUN-Churches LDM. The
official code encodes with the first stage's ``encode`` (the pre-quantisation latent for VQ, a posterior
sample for KL) and decodes with ``decode`` (which quantises for VQ); :class:`LatentPrior` does the same
with diffusers' ``VQModel`` / ``AutoencoderKL``, and calls the UNet and the scheduler directly (the
diffusers LDM pipeline's fixed 0.18215 latent scaling does not belong to these checkpoints).

Sources (``source`` of :func:`build_prior`):

- ``random``: networks built from the given diffusers constructor arguments (the ``tiny`` and ``paper``
  sizes; trained by the prior stage when no pretrained LDM exists, e.g. on the synthetic dataset);
- ``diffusers``: a diffusers directory or hub id with ``unet/`` and ``vqvae/`` (or ``vae/``) subfolders,
  e.g. ``CompVis/ldm-celebahq-256``; only local files are read;
- ``compvis``: an original LDM ``model.ckpt`` plus its ``config.yaml``, converted by :mod:`.ldm_convert`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DModel, VQModel
from torch import Tensor, nn

from midms.errors import UserError
from midms.models.midms.conv_autoencoder import ConvAutoencoder
from midms.models.midms.schedule import LDMSchedule

log = logging.getLogger(__name__)

#: the LDM noise schedule: ``linear_start=0.0015, linear_end=0.0195`` over T = 1000 steps, betas linear in
#: sqrt space (diffusers' ``scaled_linear``), and the CompVis DDIM grid (``steps_offset=1``, alpha_prev of
#: the last step = alphas_cumprod[0], i.e. ``set_alpha_to_one=False``); computed by :mod:`.schedule`
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0015,
    "beta_end": 0.0195,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


#: where a user sets the prior on the command line (``conf/model/midms.yaml`` keeps one prior per model size;
#: pretrained LDMs are the paper size's; another size is ``model.sizes.<size>.prior``)
PRIOR_KEYS = "model.sizes.paper.prior"

#: the first stages, by ``kind``
AUTOENCODERS: dict[str, type] = {"vq": VQModel, "kl": AutoencoderKL, "ae": ConvAutoencoder}


def make_scheduler(**overrides: Any) -> LDMSchedule:
    """The LDM's schedule and DDIM update, as the CompVis sampler computes them (:mod:`.schedule`)."""
    return LDMSchedule(**{**SCHEDULER_CONFIG, **overrides})


class LatentPrior(nn.Module):
    """Autoencoder + latent UNet + DDIM scheduler config. ``kind`` is ``"vq"``, ``"kl"`` or ``"ae"`` (the tiny
    prior's :class:`~.conv_autoencoder.ConvAutoencoder`).

    ``scale_factor`` multiplies latents after encoding and divides them before decoding (the LDM's
    ``scale_factor``: 1.0 for the CelebA-HQ VQ-f4 model, 0.22765929 for LSUN-Churches KL-f8). ``compvis``: the
    networks are a pretrained CompVis LDM, computed in the original's order of operations
    (:mod:`.compvis_ops`: attention, the autoencoder's non-linearity and its VQ look-up).
    """

    def __init__(
        self,
        vae: VQModel | AutoencoderKL | ConvAutoencoder,
        unet: UNet2DModel,
        scale_factor: float = 1.0,
        scheduler_config: Mapping[str, Any] | None = None,
        compvis: bool = False,
    ) -> None:
        super().__init__()
        self.vae, self.unet = vae, unet
        self.kind = next(kind for kind, cls in AUTOENCODERS.items() if isinstance(vae, cls))
        self.scale_factor = float(scale_factor)
        self.scheduler_config = dict(scheduler_config or SCHEDULER_CONFIG)
        self.compvis = compvis
        if compvis:
            from midms.models.midms.compvis_ops import use_compvis_ops

            use_compvis_ops(unet, vae)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def scheduler(self) -> LDMSchedule:
        return make_scheduler(**self.scheduler_config)

    def encode(self, images: Tensor, sample: bool = True) -> Tensor:
        """Images B×3×H×W in [-1, 1] -> latents B×c×H/f×W/f (VQ: before quantisation, as the official code)."""
        if self.kind in ("vq", "ae"):
            z = self.vae.encode(images).latents
        else:
            dist = self.vae.encode(images).latent_dist
            z = dist.sample() if sample else dist.mode()
        return z * self.scale_factor

    def decode(self, latents: Tensor) -> Tensor:
        """Latents -> images B×3×H×W (VQ decoding quantises first; gradients pass straight through)."""
        z = latents / self.scale_factor
        if self.compvis and self.kind == "vq":
            from midms.models.midms.compvis_ops import taming_quantize

            return self.vae.decode(
                taming_quantize(z, self.vae.quantize.embedding.weight), force_not_quantize=True
            ).sample
        return self.vae.decode(z).sample

    def eps(self, x: Tensor, t: int | Tensor) -> Tensor:
        """The UNet's noise prediction at timestep ``t`` (an int or a B-vector)."""
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        return self.unet(x, t).sample


def _load_local_or_hub(cls: type, name: str, subfolder: str) -> nn.Module:
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / subfolder).is_dir():
            raise UserError(f"LDM directory {path} has no '{subfolder}/' folder (expected diffusers layout).")
        return cls.from_pretrained(path, subfolder=subfolder)
    return cls.from_pretrained(name, subfolder=subfolder, local_files_only=True)


def load_diffusers(name: str, scale_factor: float = 1.0) -> LatentPrior:
    """Load a pretrained LDM from a diffusers folder or a cached hub id (``CompVis/ldm-celebahq-256``).

    Nothing is downloaded here: a hub id must already be in the Hugging Face cache (``HF_HOME``).
    """
    path = Path(name).expanduser()
    try:
        unet = _load_local_or_hub(UNet2DModel, name, "unet")
        if path.is_dir():
            vq = (path / "vqvae").is_dir()
            vae = _load_local_or_hub(VQModel if vq else AutoencoderKL, name, "vqvae" if vq else "vae")
        else:
            try:
                vae = _load_local_or_hub(VQModel, name, "vqvae")
            except OSError:
                vae = _load_local_or_hub(AutoencoderKL, name, "vae")
    except UserError:
        raise
    except (OSError, ValueError) as e:
        where = (
            path if path.is_dir() else f"the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')})"
        )
        raise UserError(
            f"Pretrained LDM '{name}' is not available locally: {type(e).__name__}: {str(e)[:300]}. "
            f"Expected a diffusers layout with unet/ and vqvae/ (or vae/) in {where}. Fix: on a machine with internet "
            f"run `huggingface-cli download {name} --local-dir <folder>` and set {PRIOR_KEYS}.path=<folder>, or use "
            f"{PRIOR_KEYS}.source=compvis with {PRIOR_KEYS}.path=<model.ckpt> and {PRIOR_KEYS}.config=<config.yaml>."
        ) from e
    log.info("loaded LDM prior %s (unet + %s)", name, type(vae).__name__)
    return LatentPrior(vae.eval(), unet.eval(), scale_factor, compvis=True)


def build_prior(
    source: str = "random",
    path: str | None = None,
    config: str | None = None,
    kind: str = "vq",
    vae: Mapping[str, Any] | None = None,
    unet: Mapping[str, Any] | None = None,
    scale_factor: float = 1.0,
) -> LatentPrior:
    """Build the prior from a config: ``random`` (with diffusers kwargs), ``diffusers`` or ``compvis``."""
    if source == "random":
        if kind not in AUTOENCODERS:
            raise UserError(f"{PRIOR_KEYS}.kind={kind!r} is not one of {', '.join(AUTOENCODERS)}.")
        return LatentPrior(AUTOENCODERS[kind](**dict(vae or {})), UNet2DModel(**dict(unet or {})), scale_factor)
    if source == "diffusers":
        if not path:
            raise UserError(f"{PRIOR_KEYS}.source=diffusers needs {PRIOR_KEYS}.path (a folder or a hub id).")
        return load_diffusers(path, scale_factor)
    if source == "compvis":
        from midms.models.midms.ldm_convert import load_compvis

        if not path:
            raise UserError(f"{PRIOR_KEYS}.source=compvis needs {PRIOR_KEYS}.path (the LDM model.ckpt).")
        return load_compvis(path, config)
    raise UserError(f"{PRIOR_KEYS}.source={source!r} is not one of random, diffusers, compvis.")
