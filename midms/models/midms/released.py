"""MIDMs' released checkpoint (``midms_celebA_finetuned.pth``) loaded into this suite's model.

The official release (README of https://github.com/cvlab-kaist/MIDMs, "Pretrained Models") is a ``train.py``
snapshot: ``{"epoch", "state_dict", "optimizer", "scheduler", ...}`` whose ``state_dict`` is the whole
``models/midms.py`` module:

- ``diff_model.*``: the fine-tuned latent diffusion model (CompVis ``LatentDiffusion``: ``model.diffusion_model.*``
  the UNet, ``first_stage_model.*`` the VQ-f4 autoencoder, schedule buffers), converted by
  :mod:`.ldm_convert` with the LDM's ``config.yaml`` (the release's ``pretrained/config.yaml``);
- ``seg_enc``, ``real_enc``, ``iter_enc`` (``models/generator.py`` ``ShallowAdaptiveFeatureGenerator*``: three
  spectrally normalised convolutions and ``G_middle_1``, a SPADE residual block), the trunk ``layer`` and the
  projections ``phi`` / ``theta``: this suite's :class:`~.encoders.MatchingNetwork` under other names
  (:mod:`midms.nn.official_names`).

- ``diffusion_sampler.*``: the official ``DDIMSampler`` (``models/diffusion/ddim.py``) is an ``nn.Module`` that holds
  the diffusion model, so the snapshot carries a second copy of every ``diff_model.`` tensor under
  ``diffusion_sampler.model.``, and the schedule buffers its ``make_schedule`` registers (``betas``,
  ``alphas_cumprod``, ..., ``ddim_alphas``, ``ddim_sigmas``, ...: :data:`SAMPLER_BUFFERS`). Each copy is checked
  equal to the tensor it copies, the buffers that copy the LDM's schedule are checked equal to it, and all are then
  dropped: they hold nothing the LDM does not.

Everything is loaded strictly: the LDM part replaces the model's prior (the release brings its own, fine-tuned
end to end), the matching part must fill :class:`~.encoders.MatchingNetwork` exactly. The official
``inference.py`` loads the same file with ``strict=False``; here a missing or extra tensor is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from midms.errors import UserError
from midms.models.midms.ldm_convert import prior_from_state
from midms.models.midms.prior import LatentPrior
from midms.nn.official_names import (
    SPADE_AND_SPECTRAL_NORM,
    SPADE_AND_SPECTRAL_NORM_INVERSE,
    load_strict,
    official_trunk_name,
    read_state,
    rename,
    strip_module,
    tensors_only,
    trunk_names,
)
from midms.weights import file_sha256

LDM_PREFIX = "diff_model."
SAMPLER_PREFIX = "diffusion_sampler."
#: the buffers ``DDIMSampler.make_schedule`` registers (cvlab-kaist/MIDMs ``models/diffusion/ddim.py``); the first
#: three are float32 copies of the LDM's own buffers of the same names
SAMPLER_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "ddim_sigmas",
    "ddim_alphas", "ddim_alphas_prev", "ddim_sqrt_one_minus_alphas", "ddim_sigmas_for_original_num_steps",
)  # fmt: skip
SAMPLER_COPIES = SAMPLER_BUFFERS[:3]
#: the release's layout (README, "Pretrained Models"): weights/celeba/midms_celebA_finetuned.pth and
#: weights/celeba/pretrained/config.yaml
DEFAULT_LDM_CONFIG = Path("pretrained") / "config.yaml"
_ENCODER_BLOCK = re.compile(r"^(seg_enc|real_enc|iter_enc)\.G_middle_1\.")
FIX = (
    "Check that the file is MIDMs' released checkpoint for this dataset and that model.size=paper (the matching "
    "networks at the official widths, the dataset's input channels)."
)


def convert_matching(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The official matching networks' keys -> :class:`MatchingNetwork` keys (values untouched)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for name in trunk_names(key) or [_ENCODER_BLOCK.sub(r"\1.block.", key)]:
            out[rename(name, SPADE_AND_SPECTRAL_NORM)] = value
    return out


_OUR_ENCODER_BLOCK = re.compile(r"^(seg_enc|real_enc|iter_enc)\.block\.")


def official_matching_name(name: str) -> str:
    """A :class:`MatchingNetwork` key -> the official name (the inverse of :func:`convert_matching`)."""
    name = rename(official_trunk_name(name), SPADE_AND_SPECTRAL_NORM_INVERSE)
    return _OUR_ENCODER_BLOCK.sub(r"\1.G_middle_1.", name)


def split_release(state: Mapping[str, Tensor], source: str = "the checkpoint") -> tuple[dict, dict]:
    """(the LDM's CompVis state dict, the matching networks' official state dict); the sampler's copies checked
    against what they copy and dropped."""
    state = strip_module(state)
    ldm = {k[len(LDM_PREFIX) :]: v for k, v in state.items() if k.startswith(LDM_PREFIX)}
    if not ldm:
        raise UserError(
            f"{source} has no '{LDM_PREFIX}*' tensors: it is not a MIDMs train.py snapshot (its state_dict "
            "holds the fine-tuned LDM under diff_model.)."
        )
    sampler = {k[len(SAMPLER_PREFIX) :]: v for k, v in state.items() if k.startswith(SAMPLER_PREFIX)}
    _check_sampler_copies(sampler, ldm, source)
    matching = {k: v for k, v in state.items() if not k.startswith((LDM_PREFIX, SAMPLER_PREFIX))}
    return ldm, matching


def _check_sampler_copies(sampler: Mapping[str, Tensor], ldm: Mapping[str, Tensor], source: str) -> None:
    """The official sampler's tensors hold only copies: of the LDM (``model.*``) and of its schedule."""
    unknown, differ = [], []
    for name, value in sampler.items():
        copied = name.removeprefix("model.")
        if not name.startswith("model.") and name not in SAMPLER_BUFFERS:
            unknown.append(SAMPLER_PREFIX + name)
        elif name.startswith("model.") or name in SAMPLER_COPIES:
            original = ldm.get(copied)
            if original is None and name.startswith("model."):
                unknown.append(SAMPLER_PREFIX + name)
            elif original is not None and not _same(value, original):
                differ.append(f"{SAMPLER_PREFIX}{name} vs {LDM_PREFIX}{copied}")
    if unknown or differ:
        parts = []
        if unknown:
            parts.append(
                f"{len(unknown)} sampler tensor(s) that copy nothing this suite knows ({', '.join(unknown[:6])})"
            )
        if differ:
            parts.append(f"{len(differ)} sampler copies that differ from what they copy ({'; '.join(differ[:4])})")
        raise UserError(
            f"{source} does not fit MIDMs' released layout: {'; '.join(parts)}. The official DDIMSampler holds only "
            f"the diffusion model (diffusion_sampler.model.*, a second reference to diff_model.*) and its schedule "
            f"buffers; a file where they disagree was edited after saving. {FIX}"
        )


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.to(b.dtype), b)


@dataclass
class Release:
    """A read release: the LDM as this suite's prior, the matching networks' converted tensors, the files' hashes."""

    prior: LatentPrior
    matching: dict[str, Tensor]
    sha256: dict[str, str]

    def load_matching(self, net: nn.Module, source: str) -> None:
        load_strict(net, self.matching, source, FIX, official_matching_name)


def read_release(path: str | Path, ldm_config: str | Path | None = None) -> Release:
    """Read the release (``torch.load(weights_only=True)``) and its LDM config; convert both parts."""
    path = Path(path).expanduser()
    config = Path(ldm_config).expanduser() if ldm_config else path.parent / DEFAULT_LDM_CONFIG
    for what, p in (("checkpoint", path), ("LDM config", config)):
        if not p.is_file():
            raise UserError(
                f"MIDMs release: {what} not found at {p}. Put the released files as the README of "
                f"https://github.com/cvlab-kaist/MIDMs lays them out (weights/celeba/midms_celebA_finetuned.pth, "
                f"weights/celeba/pretrained/config.yaml) and set model.pretrained (and model.pretrained_ldm_config "
                f"when the config lies elsewhere)."
            )
    raw = read_state(
        path, "MIDMs' released checkpoint", "the Pretrained Models link of https://github.com/cvlab-kaist/MIDMs"
    )
    ldm, matching = split_release(tensors_only(raw.get("state_dict", raw), path), str(path))
    prior = prior_from_state(ldm, config)
    return Release(prior, convert_matching(matching), {path.name: file_sha256(path), config.name: file_sha256(config)})
