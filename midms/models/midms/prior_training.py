"""The prior stage: a latent diffusion prior trained on the dataset when no pretrained LDM exists, then cached.

MIDMs (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs) starts from a pretrained LDM (Rombach et
al., CVPR 2022; https://github.com/CompVis/latent-diffusion). At ``model.size=tiny`` there is none, so one is
trained the way an LDM is, in two stages:

1. the first-stage autoencoder on the dataset's training images (L2 reconstruction, plus the VQ commitment
   loss or a KL term of weight ``kl_weight`` for those kinds; the released first stages add LPIPS and a
   patch GAN, left out at this size);
2. ``scale_factor`` = 1 / std of the latents (the LDM's ``scale_by_std``), so the diffusion sees unit-variance
   latents and a noised latent keeps its signal at the timesteps MIDMs samples from (t <= 311);
3. the latent UNet (epsilon prediction, the LDM noise schedule) on the frozen autoencoder's scaled latents; it
   ends with the exponential moving average of its weights (:class:`UNetEMA`), which an LDM keeps and releases.

The result is cached under ``<cache_dir>/priors/<dataset key>-<settings hash>/`` (``weights.safetensors`` +
``prior.json``), written to a temporary folder and renamed, under a file lock: every job that trains MIDMs on
the same data with the same prior settings shares one prior, as jobs share one downloaded LDM, and two jobs
started together train it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from midms import interrupt
from midms.errors import UserError
from midms.files import atomic_folder
from midms.metrics.pixel import per_image_psnr
from midms.models.midms.prior import LatentPrior

log = logging.getLogger(__name__)

#: bump when the stage's computation changes, so old caches are not reused
STAGE_VERSION = 1
WEIGHTS, INFO = "weights.safetensors", "prior.json"


@dataclass(frozen=True)
class PriorStage:
    """Budget and optimiser of the prior stage (``model.sizes.tiny.prior_stage``)."""

    ae_steps: int = 300
    unet_steps: int = 600
    batch_size: int = 16
    unet_batch_size: int | None = 32  # None: batch_size
    ae_lr: float = 3e-3
    unet_lr: float = 2e-3
    kl_weight: float = 1e-6
    max_images: int = 2048
    seed: int = 0
    unet_ema: bool = True  # the UNet ends with the moving average of its weights, as an LDM's release

    def __post_init__(self) -> None:
        if min(self.ae_steps, self.unet_steps) < 0 or min(self.batch_size, self.unet_batch) < 1 or self.max_images < 2:
            raise UserError(
                f"model prior_stage {asdict(self)}: steps must be >= 0, batch sizes >= 1 and max_images >= 2."
            )

    @property
    def unet_batch(self) -> int:
        return self.batch_size if self.unet_batch_size is None else self.unet_batch_size


def collect_images(batches: Iterable[Mapping[str, Tensor]], max_images: int) -> Tensor:
    """The ``image`` of each batch (the dataset's photos), up to ``max_images``, on the CPU."""
    out, count = [], 0
    for batch in batches:
        images = batch["image"].detach().cpu()[: max_images - count]
        out.append(images)
        count += images.shape[0]
        if count >= max_images:
            break
    if count < 2:
        raise UserError("the prior stage needs at least two training images; the training split has fewer.")
    return torch.cat(out)


def _device(prior: LatentPrior) -> torch.device:
    return next(prior.parameters()).device


def _batches(n: int, steps: int, batch_size: int, gen: torch.Generator) -> Iterable[Tensor]:
    for _ in range(steps):
        yield torch.randint(0, n, (min(batch_size, n),), generator=gen)


def autoencoder_losses(prior: LatentPrior, x: Tensor, kl_weight: float) -> tuple[Tensor, Tensor]:
    """(L2 reconstruction, regulariser: the VQ commitment + codebook loss, ``kl_weight`` · KL, or none)."""
    vae = prior.vae
    if prior.kind == "ae":
        return F.mse_loss(vae.decode(vae.encode(x).latents).sample, x), x.new_zeros(())
    if prior.kind == "vq":
        rec, commit = vae.decode(vae.encode(x).latents, return_dict=False)
        return F.mse_loss(rec, x), commit.mean()
    dist = vae.encode(x).latent_dist
    return F.mse_loss(vae.decode(dist.sample()).sample, x), kl_weight * dist.kl().mean()


def train_autoencoder(prior: LatentPrior, images: Tensor, stage: PriorStage, gen: torch.Generator) -> list[float]:
    """Stage 1: the autoencoder on ``images``; returns the reconstruction loss of every step."""
    prior.vae.train().requires_grad_(True)
    opt = torch.optim.Adam(prior.vae.parameters(), lr=stage.ae_lr)
    curve = []
    bar = tqdm(_batches(len(images), stage.ae_steps, stage.batch_size, gen), total=stage.ae_steps, desc="prior: AE")
    device = _device(prior)
    for idx in bar:
        interrupt.check("the prior stage (not cached yet: it starts again on resume)")
        rec, reg = autoencoder_losses(prior, images[idx].to(device), stage.kl_weight)
        opt.zero_grad()
        (rec + reg).backward()
        opt.step()
        curve.append(rec.item())
        bar.set_postfix(rec=f"{curve[-1]:.4f}", refresh=False)
    prior.vae.eval().requires_grad_(False)
    return curve


@torch.no_grad()
def encode_all(prior: LatentPrior, images: Tensor, batch_size: int = 64) -> Tensor:
    """Unscaled latents of every image (VQ: before quantisation; KL: the posterior mode)."""
    saved, prior.scale_factor = prior.scale_factor, 1.0
    try:
        chunks = [images[i : i + batch_size].to(_device(prior)) for i in range(0, len(images), batch_size)]
        return torch.cat([prior.encode(x, sample=False).cpu() for x in chunks])
    finally:
        prior.scale_factor = saved


class UNetEMA:
    """The exponential moving average of the UNet's weights that an LDM keeps and releases (``LitEma`` of
    CompVis/latent-diffusion, ``use_ema=True``): after update ``n`` the decay is ``min(0.9999, (1 + n) / (10 + n))``,
    so a short run averages over its last tens of steps and a long one over hundreds."""

    MAX_DECAY = 0.9999

    def __init__(self, module: torch.nn.Module) -> None:
        self.shadow = {k: v.detach().clone() for k, v in module.named_parameters()}
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.MAX_DECAY, (1 + self.updates) / (10 + self.updates))
        for k, v in module.named_parameters():
            self.shadow[k].sub_((1 - decay) * (self.shadow[k] - v.detach()))

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        for k, v in module.named_parameters():
            v.copy_(self.shadow[k])


def train_unet(prior: LatentPrior, latents: Tensor, stage: PriorStage, gen: torch.Generator) -> list[float]:
    """Stage 3: the UNet's epsilon loss on scaled latents; returns the loss of every step."""
    unet, sched = prior.unet, prior.scheduler()
    was_training, was_trainable = unet.training, [q.requires_grad for q in unet.parameters()]
    unet.train().requires_grad_(True)  # e.g. frozen by a MIDMs warm-up before a prior is (re)trained
    opt = torch.optim.Adam(unet.parameters(), lr=stage.unet_lr)
    ema = UNetEMA(unet) if stage.unet_ema else None
    curve = []
    bar = tqdm(
        _batches(len(latents), stage.unet_steps, stage.unet_batch, gen), total=stage.unet_steps, desc="prior: UNet"
    )
    device = _device(prior)
    for idx in bar:
        interrupt.check("the prior stage (not cached yet: it starts again on resume)")
        z = latents[idx]
        t = torch.randint(0, sched.config.num_train_timesteps, (z.shape[0],), generator=gen)
        noise = torch.randn(z.shape, generator=gen)
        z, noise, t = z.to(device), noise.to(device), t.to(device)
        loss = F.mse_loss(unet(sched.add_noise(z, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(unet)
        curve.append(loss.item())
        bar.set_postfix(eps=f"{curve[-1]:.4f}", refresh=False)
    if ema is not None:
        ema.copy_to(unet)
    unet.train(was_training)  # the module's mode is its owner's business (Lightning sets it for the fit)
    for q, flag in zip(unet.parameters(), was_trainable, strict=True):
        q.requires_grad_(flag)
    return curve


@torch.no_grad()
def reconstruction_psnr(prior: LatentPrior, images: Tensor, batch_size: int = 64) -> float:
    """Mean per-image PSNR (dB, images in [-1, 1]) of the autoencoder's reconstruction."""
    values = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(_device(prior))
        values.append(per_image_psnr(prior.decode(prior.encode(x, sample=False)), x))
    return float(torch.cat(values).mean())


def train_prior(prior: LatentPrior, images: Tensor, stage: PriorStage) -> dict[str, Any]:
    """Train ``prior`` in place (autoencoder, scale factor, UNet) on ``images``; returns what it measured."""
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # the run's own random stream is left as it was
        gen = torch.Generator().manual_seed(stage.seed)
        torch.manual_seed(stage.seed)
        ae_curve = train_autoencoder(prior, images, stage, gen)
        latents = encode_all(prior, images)
        prior.scale_factor = float(1.0 / latents.std().clamp_min(1e-6))
        unet_curve = train_unet(prior, latents * prior.scale_factor, stage, gen)
    info = {
        "scale_factor": prior.scale_factor,
        "autoencoder_psnr": reconstruction_psnr(prior, images[:256]),
        "ae_curve": ae_curve,
        "unet_curve": unet_curve,
        "seconds": time.perf_counter() - t0,
        "images": len(images),
    }
    log.info(
        "prior stage: autoencoder %.2f dB on its training images, scale_factor %.4f, UNet loss %.4f, %.0f s",
        info["autoencoder_psnr"], prior.scale_factor, sum(unet_curve[-50:]) / max(1, len(unet_curve[-50:])),
        info["seconds"],
    )  # fmt: skip
    return info


def cache_key(dataset_key: str, prior_cfg: Mapping[str, Any], stage: PriorStage) -> str:
    """The cache folder's name: the data, the networks' sizes and the stage's settings."""
    blob = json.dumps({"cfg": dict(prior_cfg), "stage": asdict(stage), "v": STAGE_VERSION}, sort_keys=True, default=str)
    return f"{dataset_key}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def load_cached(prior: LatentPrior, folder: Path) -> dict[str, Any]:
    """Load a cached prior into ``prior`` (in place: optimisers keep their parameters)."""
    info = json.loads((folder / INFO).read_text())
    prior.load_state_dict(load_file(folder / WEIGHTS))
    prior.scale_factor = float(info["scale_factor"])
    prior.vae.eval().requires_grad_(False)
    return info


def _load_intact(prior: LatentPrior, folder: Path) -> dict[str, Any] | None:
    """The cached prior loaded into ``prior``; None (``prior`` untouched, the entry removed) when it cannot be read
    (a truncated file, a disk error): the caller trains it again."""
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    try:
        return load_cached(prior, folder)
    except Exception as e:  # safetensors' and json's errors, a missing or misshapen tensor
        log.warning("prior stage: the cached prior at %s cannot be read (%s: %s); training it again", folder,
                    type(e).__name__, e)  # fmt: skip
        prior.load_state_dict(before)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _save(prior: LatentPrior, info: Mapping[str, Any], folder: Path) -> None:
    """Write the prior next to ``folder`` and rename it into place: a killed job leaves no half cache."""

    def write(tmp: Path) -> None:
        save_file({k: v.detach().contiguous() for k, v in prior.state_dict().items()}, tmp / WEIGHTS)
        (tmp / INFO).write_text(json.dumps(dict(info), indent=1))

    atomic_folder(folder, write)


def prepare_prior(
    prior: LatentPrior,
    batches: Iterable[Mapping[str, Tensor]],
    stage: PriorStage,
    cache_root: str | Path | None,
    dataset_key: str | None,
    prior_cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """Give ``prior`` its trained weights: from the cache when this data and these settings were trained on
    before, else train it on ``batches`` (and cache it when ``cache_root`` and ``dataset_key`` are known)."""
    # the run's random stream is the same whether the prior is trained or loaded (reading the images draws
    # a loader seed from it): a run that found the cache and one that filled it train identically afterwards
    with torch.random.fork_rng(devices=[]):
        if cache_root is None or dataset_key is None:
            info = train_prior(prior, collect_images(batches, stage.max_images), stage)
            return {**info, "cache": None}
        folder = Path(cache_root) / cache_key(dataset_key, prior_cfg, stage)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            info = _load_intact(prior, folder) if (folder / INFO).is_file() else None
            if info is not None:
                log.info("prior stage: the prior trained on %s is cached at %s", dataset_key, folder)
            else:
                info = train_prior(prior, collect_images(batches, stage.max_images), stage)
                _save(prior, info, folder)
                log.info("prior stage: cached at %s", folder)
    return {**info, "cache": str(folder)}
