"""Our MIDMs against the official inference, end to end, at paper size, with the same weights and noise.

    python -m benchmarks.official_midms --official <folder>          # a checkout of cvlab-kaist/MIDMs
    python -m benchmarks.official_midms --official <folder> --image-size 128 --out report.json

The official repository (https://github.com/cvlab-kaist/MIDMs) is imported from the folder the user fetched; nothing
of it is shipped or downloaded here. What runs:

1. the official ``models/midms.py`` ``MIDMs`` is built as ``inference.py`` builds it (``backbone="VQGAN"``,
   ``phase="e2e_recurrent"``, ``label_nc=15``, ``diffusion_iteratiom_num=4``, ``pos_embed="conv"``, confidence
   masking) on the CelebA-HQ LDM's config (``celebahq-ldm-vq-4``, written with the official module paths), with
   seeded random weights (its zero-initialised layers and its codebook drawn afresh, so that nothing is trivially
   zero), and saved exactly as ``train.py`` saves a snapshot: ``{"epoch", "state_dict": model.state_dict(),
   "optimizer", "scheduler", "best_loss"}`` after the sampler's ``make_schedule`` (so the file carries the sampler's
   copy of the diffusion model and its ``ddim_*`` buffers, as a trained release does), its config beside it in
   ``pretrained/config.yaml``;
2. our model loads that file through the user route (``dataset=celebahq model=midms model.size=paper train=false
   model.pretrained=<file>``);
3. both translate the same batch: the official ``forward(mode="inference")`` after ``set_copy()``, as
   ``inference.py`` calls it, and our ``translate``; the sampling noise is the same (the official ``q_sample`` and
   ``noise_like`` are fed the tensors our sampler draws from its seeded generator, in the order it draws them).

Printed (and written to ``--out`` as JSON): the first warp's difference (latents), the confidence masks' agreement,
each UNet evaluation on the same input, the latent trajectory, and the decoded image (max and mean absolute
difference on [-1, 1], and the share of pixels off by more than 2/255 after conversion to 8 bits).

The official code needs ``einops`` (``pip install einops``); its repository lacks ``models/sync_batchnorm`` (a
single-GPU stand-in is injected: ``nn.BatchNorm``, which the inference path never runs) and ``util/color150.mat`` (a
colour table for label visualisation, replaced while importing), and it imports ``rank_zero_only`` from an older
``pytorch_lightning`` (served from the installed one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

log = logging.getLogger("benchmarks.official_midms")

SEMANTIC_NC = 15  # CoCosNet's CelebA-HQ edge tensor (celebahqedge_dataset.py), which MIDMs reads: label_nc 15


def celebahq_ldm_config() -> dict[str, Any]:
    """CompVis ``configs/latent-diffusion/celebahq-ldm-vq-4.yaml`` with the official MIDMs module paths."""
    ddconfig = {"double_z": False, "z_channels": 3, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}  # fmt: skip
    unet = {"image_size": 64, "in_channels": 3, "out_channels": 3, "model_channels": 224,
            "attention_resolutions": [8, 4, 2], "num_res_blocks": 2, "channel_mult": [1, 2, 3, 4],
            "num_head_channels": 32}  # fmt: skip
    return {
        "model": {
            "target": "models.diffusion.ddpm.LatentDiffusion",
            "params": {
                "linear_start": 0.0015,
                "linear_end": 0.0195,
                "num_timesteps_cond": 1,
                "log_every_t": 200,
                "timesteps": 1000,
                "first_stage_key": "image",
                "image_size": 64,
                "channels": 3,
                "monitor": "val/loss_simple_ema",
                "unet_config": {"target": "models.diffusionmodules.openaimodel.UNetModel", "params": unet},
                "first_stage_config": {
                    "target": "models.feature_backbones.autoencoder.VQModelInterface",
                    "params": {
                        "embed_dim": 3,
                        "n_embed": 8192,
                        "ddconfig": ddconfig,
                        "lossconfig": {"target": "torch.nn.Identity"},
                    },
                },
                "cond_stage_config": "__is_unconditional__",
            },  # fmt: skip
        }
    }


# -- the official code ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def official_imports(folder: Path) -> Iterator[None]:
    """Make ``folder`` importable as the official code expects (``models``, ``util``, ``data`` at top level)."""
    import scipy.io
    import torch.nn as nn

    missing = [p for p in ("models/midms.py", "models/diffusion/ddim.py", "util/util.py") if not (folder / p).is_file()]
    if missing:
        raise SystemExit(f"{folder} is not a checkout of cvlab-kaist/MIDMs: {', '.join(missing)} missing.")
    try:
        import einops  # noqa: F401
    except ImportError:
        raise SystemExit("the official MIDMs code needs einops: pip install einops") from None
    sync_bn = types.ModuleType("models.sync_batchnorm")  # absent from the repository; unused at inference
    sync_bn.SynchronizedBatchNorm1d, sync_bn.SynchronizedBatchNorm2d = nn.BatchNorm1d, nn.BatchNorm2d
    sys.modules["models.sync_batchnorm"] = sync_bn
    from pytorch_lightning.utilities import rank_zero_only

    sys.modules["pytorch_lightning.utilities.distributed"] = types.SimpleNamespace(rank_zero_only=rank_zero_only)
    loadmat = scipy.io.loadmat
    scipy.io.loadmat = lambda *a, **k: {"colors": np.zeros((150, 3), np.uint8)}  # util/color150.mat: absent
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        scipy.io.loadmat = loadmat


def build_official(folder: Path, config_path: Path, seed: int):
    """The official MIDMs as ``inference.py`` builds it, with seeded random weights everywhere."""
    with official_imports(folder):
        from models.midms import MIDMs as OfficialMIDMs

        torch.manual_seed(seed)
        model = OfficialMIDMs(
            backbone="VQGAN", use_original_imgsize=False, phase="e2e_recurrent", label_nc=SEMANTIC_NC,
            diffusion_iteratiom_num=4, diffusion_config_path=str(config_path), train=False,
            pos_embed="conv", confidence_masking=True,
        )  # fmt: skip
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():  # openaimodel's zero_module layers: the UNet would predict zero noise
                fan_in = max(1, p[0].numel()) if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
        codebook = model.diff_model.first_stage_model.quantize.embedding.weight
        z = model.diff_model.first_stage_model.encode(torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1)
        codebook.copy_(torch.randn(codebook.shape, generator=gen) * z.std())  # the official init is ±1/8192
    model.diffusion_sampler.make_schedule(16, ddim_eta=0.0, verbose=False)  # as training leaves the sampler
    return model


def save_as_train_py(model, folder: Path, config: dict[str, Any]) -> Path:
    """``train.py``'s snapshot (``save_checkpoint``) and the release's ``pretrained/config.yaml``."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-6, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 12, 14, 24], gamma=0.3)
    path = folder / "midms_celebA_finetuned.pth"
    torch.save(
        {
            "epoch": 4,
            "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "best_loss": 0,
        },
        path,
    )
    (folder / "pretrained").mkdir(exist_ok=True)
    (folder / "pretrained" / "config.yaml").write_text(yaml.safe_dump(config))
    return path


class OfficialNoise:
    """Feeds the official sampler our noise: the first ``q_sample`` (the exemplar path's interleaved start) and the
    refinement's ``q_sample`` and ``noise_like`` draws take ours in order; the draws the official code makes and
    discards (the source path's, the deterministic steps' ``0 * noise``) take zeros or its own."""

    def __init__(self, model, noises: list[torch.Tensor]) -> None:
        import models.diffusion.ddim as ddim
        import models.midms as midms

        self.model, self.ddim, self.midms, self.noises = model, ddim, midms, list(noises)
        self.q_calls, self.refining = 0, False
        self.unet_calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.decoded: list[torch.Tensor] = []
        self.rematch_inputs: list[torch.Tensor] = []
        self.cycle_errors: list[torch.Tensor] = []

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        diff = self.model.diff_model
        q_sample, apply_model, noise_like = diff.q_sample, diff.apply_model, self.ddim.noise_like
        decode = diff.first_stage_model.decode
        sample = type(self.model.copied_diffusion_sampler).sample
        fbcheck = self.midms.fbcheck
        iter_enc = self.model.iter_enc.forward

        def q(x_start, t, noise=None):
            self.q_calls += 1
            if self.q_calls == 1 or self.refining:
                noise = self.noises.pop(0)
            return q_sample(x_start, t, noise=noise)

        def nl(shape, device, repeat=False):
            return self.noises.pop(0) if self.refining else torch.zeros(shape, device=device)

        def unet(x, t, c):
            out = apply_model(x, t, c)
            self.unet_calls.append((int(t[0]), x.clone(), out.clone()))
            return out

        def refine(sampler, *a, **k):
            self.refining = True
            try:
                return sample(sampler, *a, **k)
            finally:
                self.refining = False

        def dec(z, *a, **k):
            self.decoded.append(z.clone())
            return decode(z, *a, **k)

        def fb(*a):
            out = fbcheck(*a)
            self.cycle_errors.append(out[0].clone())
            return out

        def enc(x, *a, **k):
            if len(self.rematch_inputs) % 2 == 0:  # the exemplar path's re-match, then the source path's
                self.rematch_inputs.append(x.clone())
            else:
                self.rematch_inputs.append(None)
            return iter_enc(x, *a, **k)

        diff.q_sample, diff.apply_model, self.ddim.noise_like = q, unet, nl
        diff.first_stage_model.decode = dec
        self.midms.fbcheck, self.model.iter_enc.forward = fb, enc
        self.model.copied_diffusion_sampler.sample = types.MethodType(refine, self.model.copied_diffusion_sampler)
        try:
            yield
        finally:
            diff.q_sample, diff.apply_model, self.ddim.noise_like = q_sample, apply_model, noise_like
            diff.first_stage_model.decode = decode
            self.midms.fbcheck = fbcheck
            del self.model.iter_enc.forward
            del self.model.copied_diffusion_sampler.sample


def run_official(model, batch: dict[str, torch.Tensor], noises: list[torch.Tensor]) -> dict[str, Any]:
    feed = OfficialNoise(model, noises)
    with feed.active(), torch.no_grad():
        trg = batch["semantics"][:, :1].repeat(1, 3, 1, 1)  # inference.py: only its batch size is read
        image, _, mask = model(
            trg, batch["image"], batch["exemplar"], input_semantics=batch["semantics"],
            ref_semantics=batch["exemplar_semantics"], mode="inference", iter=1, warmup_iter=0,
        )  # fmt: skip
    if feed.noises:
        raise RuntimeError(f"the official run left {len(feed.noises)} of our noise tensors unused")
    # decode order in the official forward: the final latent, the source path's, then the debug stack (the first
    # warp, and per re-match the re-warped and the blended latent)
    final, _, warp, *stack = feed.decoded
    return {"image": image, "warp": warp, "rematched": stack[0::2], "blended": stack[1::2], "mask": mask,
            "final_latent": final, "unet": feed.unet_calls, "rematch_inputs": feed.rematch_inputs[0::2],
            "cycle_errors": feed.cycle_errors}  # fmt: skip


# -- ours ---------------------------------------------------------------------------------------------------


def build_ours(path: Path, image_size: int):
    import hydra
    from hydra import compose, initialize_config_dir

    from midms.data.contract import DataSpec

    overrides = ["dataset=celebahq", "model=midms", "model.size=paper", "train=false", f"model.pretrained={path}",
                 "paths.output_dir=/tmp/unused"]  # fmt: skip
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides)
    spec = DataSpec(semantic_nc=SEMANTIC_NC, image_size=image_size, num_classes=19, has_target=False)
    return hydra.utils.instantiate(cfg.model.module, data_spec=spec).eval()


def run_ours(model, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    rec: dict[str, Any] = {"unet": [], "rematched": [], "masks": [], "decoded": [], "rematch_inputs": [],
                           "cycle_errors": []}  # fmt: skip
    eps, rematch, decode, warp = model.prior.eps, model.rematch, model.prior.decode, model.soft_warp

    def eps_(x, t):
        out = eps(x, t)
        rec["unet"].append((int(t), x.clone(), out.clone()))
        return out

    def rematch_(*a):
        rec["rematch_inputs"].append(a[0].clone())
        new, mask, q = rematch(*a)
        rec["rematched"].append(new.clone())
        rec["masks"].append(mask.clone())
        return new, mask, q

    def warp_(*a):
        out = warp(*a)
        rec.setdefault("warp", out.clone())
        return out

    def decode_(z):
        rec["decoded"].append(z.clone())
        return decode(z)

    def cycle_error_(*a, **k):
        out = cycle_error(*a, **k)
        rec["cycle_errors"].append(out.clone())
        return out

    import midms.models.midms.model as model_module

    cycle_error = model_module.cycle_error
    model.prior.eps, model.rematch, model.prior.decode, model.soft_warp = eps_, rematch_, decode_, warp_
    model_module.cycle_error = cycle_error_
    try:
        rec["image"] = model.translate(batch)
    finally:
        model_module.cycle_error = cycle_error
        for name in ("eps", "decode"):
            delattr(model.prior, name)
        del model.rematch, model.soft_warp
    rec["final_latent"] = rec["decoded"][-1]
    return rec


def our_noises(model, shape: tuple[int, ...]) -> list[torch.Tensor]:
    """The tensors our sampler draws, in its order: the interleaved start, the refinement's start, one per
    refinement step (:class:`midms.models.midms.sampler.InterleavedSampler`, seeded by ``model.seed``)."""
    gen = torch.Generator().manual_seed(model.seed)
    n = 2 + len(model.schedule.refine_timesteps)
    return [torch.randn(shape, generator=gen) for _ in range(n)]


# -- comparison ---------------------------------------------------------------------------------------------


def diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a.double() - b.double()).abs()
    return {"max": float(d.max()), "mean": float(d.mean())}


def image_diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """On [-1, 1] (both clamped, as images are saved: the official forward returns the decoder's raw output)."""
    a, b = a.clamp(-1, 1), b.clamp(-1, 1)
    to8 = lambda x: ((x + 1) * 127.5).round()  # noqa: E731
    return {**diff(a, b), "share_off_by_more_than_2_of_255": float(((to8(a) - to8(b)).abs() > 2).float().mean())}


def make_batch(image_size: int, seed: int) -> dict[str, torch.Tensor]:
    """Smooth random photos (a few octaves of noise) and binary edge-like semantics, as the CelebA-HQ reader gives."""
    gen = torch.Generator().manual_seed(seed)

    def photo() -> torch.Tensor:
        x = sum(
            torch.nn.functional.interpolate(torch.randn(1, 3, s, s, generator=gen), size=image_size, mode="bilinear")
            for s in (4, 16, 64)
        )
        return torch.tanh(x / 2)

    def semantics() -> torch.Tensor:
        cells = (torch.rand(1, SEMANTIC_NC, image_size // 4, image_size // 4, generator=gen) > 0.8).float()
        return cells.repeat_interleave(4, -1).repeat_interleave(4, -2)

    return {"image": photo(), "exemplar": photo(), "semantics": semantics(), "exemplar_semantics": semantics()}


def compare(official: Path, image_size: int, seed: int, workdir: Path) -> dict[str, Any]:
    from midms.models.midms.matching import confidence_mask

    config = celebahq_ldm_config()
    config_path = workdir / "ldm_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    t = time.perf_counter()
    theirs = build_official(official, config_path, seed)
    path = save_as_train_py(theirs, workdir, config)
    log.info("official model built and saved as train.py does (%.0f s, %.2f GB)", time.perf_counter() - t,
             path.stat().st_size / 1e9)  # fmt: skip
    ours = build_ours(path, image_size)
    with official_imports(official):
        theirs.set_copy()  # inference.py: a second LDM whose sampler wraps the first model
    theirs.eval()
    batch = make_batch(image_size, seed)
    latent_shape = (1, 3, image_size // 4, image_size // 4)
    noises = our_noises(ours, latent_shape)
    t = time.perf_counter()
    a = run_official(theirs, batch, noises)
    t_official = time.perf_counter() - t
    t = time.perf_counter()
    b = run_ours(ours, batch)
    t_ours = time.perf_counter() - t
    ref_calls = [c for c in a["unet"] if c[0] in {tt for tt, *_ in b["unet"]}]
    interleaved = [c for i, c in enumerate(a["unet"][: len(a["unet"]) - 20]) if i == 0 or a["unet"][i - 1][0] != c[0]]
    official_ref = interleaved[:4] + a["unet"][-20:]
    assert len(ref_calls) >= len(official_ref)
    unet_same_input = []
    with torch.no_grad():
        for t_, x, out in official_ref:
            unet_same_input.append(diff(ours.prior.eps(x, t_), out)["max"])
    exemplar_latent = theirs.diff_model.first_stage_model.encode(batch["exemplar"])
    report = {
        "image_size": image_size,
        "seed": seed,
        "encode": diff(ours.prior.encode(batch["exemplar"]), exemplar_latent),
        "first_warp": diff(b["warp"], a["warp"]),
        "rematch_input": [diff(x, y) for x, y in zip(b["rematch_inputs"], a["rematch_inputs"], strict=True)],
        "cycle_error": [diff(x, y) for x, y in zip(b["cycle_errors"], a["cycle_errors"], strict=True)],
        "mask_positions_differing": [
            int((confidence_mask(x) != confidence_mask(y)).sum())
            for x, y in zip(b["cycle_errors"], a["cycle_errors"], strict=True)
        ],
        "rematched": [diff(x, y) for x, y in zip(b["rematched"], a["rematched"], strict=True)],
        "unet_same_input_max": unet_same_input,
        "trajectory_input_max": [diff(x, y[1])["max"] for (_, x, _), y in zip(b["unet"], official_ref, strict=True)],
        "final_latent": diff(b["final_latent"], a["final_latent"]),
        "image": image_diff(b["image"], a["image"]),
        "seconds": {"official": t_official, "ours": t_ours},
    }
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of cvlab-kaist/MIDMs")
    parser.add_argument("--image-size", type=int, default=256, help="input size (paper: 256; latents are 1/4)")
    parser.add_argument("--seed", type=int, default=0, help="weights, inputs and sampling noise")
    parser.add_argument("--workdir", type=Path, help="where the release is written (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = compare(args.official.expanduser().resolve(), args.image_size, args.seed, workdir)
    log.info("%s", json.dumps(report, indent=1))
    if args.out:
        from midms.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
