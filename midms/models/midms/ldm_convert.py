"""Convert an original CompVis LDM checkpoint (``model.ckpt`` + ``config.yaml``) to diffusers modules.

The pretrained priors of MIDMs (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs, which loads them
with ``models/ldm_util.py``) are CompVis latent-diffusion checkpoints (Rombach et al., CVPR 2022,
https://github.com/CompVis/latent-diffusion): ``model.diffusion_model.*`` is an ``openaimodel.UNetModel``,
``first_stage_model.*`` a taming-style ``VQModel`` or ``AutoencoderKL``. This module maps their keys onto
diffusers' :class:`~diffusers.UNet2DModel` / :class:`~diffusers.VQModel` / :class:`~diffusers.AutoencoderKL`
(written from the two architectures; the diffusers repository's conversion scripts are not part of the
installed package). Every tensor of the checkpoint is either mapped or in a documented ignore list
(the diffusion buffers ``betas``, ``alphas_cumprod`` …, the EMA copy ``model_ema.*``), and the diffusers
modules load the result strictly.

Layout notes:

- the UNet's ``AttentionBlock`` holds q, k, v in one 1×1 ``qkv`` convolution laid out per head
  (``[q_h, k_h, v_h]`` for each head h, the "legacy" order); it is split into ``to_q``/``to_k``/``to_v``;
- ``input_blocks`` 0 is ``conv_in``; then per level ``num_res_blocks`` blocks (``.0`` resnet, ``.1`` attention)
  and a down-sampler (``.0.op``) except at the last level; ``output_blocks`` hold ``num_res_blocks + 1`` blocks
  per level, deepest level first, the up-sampler (``.{1|2}.conv``) after the last one;
- the first stage's ``decoder.up`` is indexed from the shallowest level, diffusers' ``up_blocks`` from the deepest;
- the LSUN-Churches LDM (``lsun_churches-ldm-kl-8``) has ``num_heads`` (eight heads at every level, set on the
  attention modules after construction), ``use_scale_shift_norm`` (an embedding of twice the width: a scale and a
  shift) and ``resblock_updown`` (residual blocks as samplers: ``input_blocks.i.0`` / ``output_blocks.i.{1|2}``
  hold a resnet's keys); its ``scale_factor`` buffer is reported and not applied, because the official MIDMs code
  encodes and decodes with the first stage directly (``models/midms.py``), so the prior's scale stays the config's
  (1.0). Checked against the official ``openaimodel.UNetModel`` and first stage (cvlab-kaist/MIDMs
  ``models/diffusionmodules/``) with the same random weights: outputs within 3e-7.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL, UNet2DModel, VQModel
from diffusers.models.attention_processor import Attention
from omegaconf import OmegaConf
from torch import Tensor

from midms.errors import UserError
from midms.models.midms.prior import PRIOR_KEYS, SCHEDULER_CONFIG, LatentPrior
from midms.weights import load_checkpoint

log = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
#: checkpoint entries with no counterpart in diffusers modules (schedule buffers, EMA weights, empty conditioner)
IGNORED = re.compile(
    r"^(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_.*|log_one_minus_alphas_cumprod|posterior_.*|logvar|"
    r"model_ema\..*|cond_stage_model\..*|first_stage_model\.loss\..*|scale_factor)$"
)

_RES = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_VAE_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_VAE_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


# -- configs ------------------------------------------------------------------------------------------


def unet_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """``unet_config.params`` of a CompVis config -> :class:`UNet2DModel` kwargs (see :func:`build_unet`).

    Attention heads come as ``num_head_channels`` (channels per head: the CelebA-HQ LDM) or ``num_heads`` (a
    fixed head count at every level: the LSUN-Churches LDM), which ``UNet2DModel`` cannot express for levels of
    different widths; it is kept as ``num_heads`` and set on the attention modules by :func:`build_unet`.
    ``use_scale_shift_norm`` is diffusers' ``scale_shift`` time conditioning; ``resblock_updown`` makes the
    down- and up-samplers residual blocks (diffusers' ``resnet`` samplers, ``Resnet*sampleBlock2D`` at levels
    without attention).
    """
    mult = list(params["channel_mult"])
    ch = int(params["model_channels"])
    attn_ds = {int(a) for a in params.get("attention_resolutions", [])}
    levels_attn = [2**i in attn_ds for i in range(len(mult))]
    head_ch = params.get("num_head_channels", -1)
    num_heads = params.get("num_heads", -1)
    if head_ch in (None, -1) and num_heads in (None, -1):
        raise UserError("CompVis UNet config with neither num_head_channels nor num_heads (set one in config.yaml).")
    updown = bool(params.get("resblock_updown", False))
    plain_down, plain_up = (
        ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if updown else ("DownBlock2D", "UpBlock2D")
    )
    kwargs = {
        "sample_size": int(params.get("image_size", 64)),
        "in_channels": int(params["in_channels"]),
        "out_channels": int(params["out_channels"]),
        "block_out_channels": tuple(ch * m for m in mult),
        "layers_per_block": int(params["num_res_blocks"]),
        "down_block_types": tuple("AttnDownBlock2D" if a else plain_down for a in levels_attn),
        "up_block_types": tuple("AttnUpBlock2D" if a else plain_up for a in reversed(levels_attn)),
        "attention_head_dim": int(head_ch) if head_ch not in (None, -1) else ch // int(num_heads),
        "norm_num_groups": 32,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }
    if params.get("use_scale_shift_norm"):
        kwargs["resnet_time_scale_shift"] = "scale_shift"
        kwargs["attn_norm_num_groups"] = 32  # diffusers drops the mid-block attention's GroupNorm otherwise
    if updown:
        kwargs["downsample_type"] = kwargs["upsample_type"] = "resnet"
    if head_ch in (None, -1):
        kwargs["num_heads"] = int(num_heads)
    return kwargs


def build_unet(kwargs: Mapping[str, Any]) -> UNet2DModel:
    """``UNet2DModel(**kwargs)``, with a fixed head count (``num_heads``) set on every attention module."""
    kwargs = dict(kwargs)
    num_heads = kwargs.pop("num_heads", None)
    unet = UNet2DModel(**kwargs)
    if num_heads:
        for module in unet.modules():
            if isinstance(module, Attention):
                module.heads = int(num_heads)
                module.scale = (module.inner_dim // int(num_heads)) ** -0.5
    return unet


def vae_kwargs(target: str, params: Mapping[str, Any]) -> tuple[type, dict[str, Any]]:
    """``first_stage_config`` -> (diffusers class, kwargs)."""
    dd = params["ddconfig"]
    if list(dd.get("attn_resolutions", [])):
        raise UserError("first-stage models with per-level attention (ddconfig.attn_resolutions) are not supported.")
    n = len(dd["ch_mult"])
    kw = {
        "in_channels": int(dd["in_channels"]),
        "out_channels": int(dd["out_ch"]),
        "down_block_types": ("DownEncoderBlock2D",) * n,
        "up_block_types": ("UpDecoderBlock2D",) * n,
        "block_out_channels": tuple(int(dd["ch"]) * m for m in dd["ch_mult"]),
        "layers_per_block": int(dd["num_res_blocks"]),
        "latent_channels": int(dd["z_channels"]),
        "norm_num_groups": 32,
    }
    if target.endswith(("VQModel", "VQModelInterface")):
        return VQModel, {**kw, "num_vq_embeddings": int(params["n_embed"]), "vq_embed_dim": int(params["embed_dim"])}
    if target.endswith("AutoencoderKL"):
        return AutoencoderKL, kw
    raise UserError(f"first_stage_config.target {target!r} is neither a VQ nor a KL autoencoder.")


# -- keys ---------------------------------------------------------------------------------------------


def _split_qkv(w: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(3C, C[, 1]) legacy per-head qkv -> three (C, C) (or (C,)) tensors."""
    c3 = w.shape[0]
    per = w.reshape(heads, 3, c3 // (3 * heads), *w.shape[1:])
    return tuple(per[:, i].reshape(c3 // 3, *w.shape[1:]) for i in range(3))  # type: ignore[return-value]


def _squeeze(w: Tensor) -> Tensor:
    return w.reshape(w.shape[0], -1) if w.dim() > 2 else w


class _Converted(dict):
    """A converted state dict that remembers, for each of its keys, the source key it came from (``origin``)."""

    def __init__(self) -> None:
        super().__init__()
        self.origin: dict[str, str] = {}
        self.source = ""

    def __setitem__(self, key: str, value: Tensor) -> None:
        super().__setitem__(key, value)
        self.origin[key] = self.source


def convert_unet(state: Mapping[str, Tensor], kwargs: Mapping[str, Any]) -> tuple[dict[str, Tensor], list[str]]:
    """UNet keys (without the ``model.diffusion_model.`` prefix) -> (diffusers state dict, source keys used)."""
    levels = len(kwargs["block_out_channels"])
    lpb = kwargs["layers_per_block"]
    head_dim = kwargs["attention_head_dim"]
    num_heads = kwargs.get("num_heads")
    down: dict[int, str] = {}
    for lvl in range(levels):
        for j in range(lpb):
            down[1 + lvl * (lpb + 1) + j] = f"down_blocks.{lvl}.{{kind}}.{j}"
        if lvl < levels - 1:
            down[1 + lvl * (lpb + 1) + lpb] = f"down_blocks.{lvl}.downsamplers.0"
    out = _Converted()
    used: list[str] = []

    def put_attn(dst: str, sub: str, v: Tensor) -> None:
        heads = num_heads or v.shape[0] // (3 if sub.startswith("qkv") else 1) // head_dim
        if sub.startswith("qkv"):
            for name, part in zip(("to_q", "to_k", "to_v"), _split_qkv(v, heads), strict=True):
                out[f"{dst}.{name}.{sub.split('.')[-1]}"] = _squeeze(part)
        elif sub.startswith("norm"):
            out[f"{dst}.group_norm.{sub.split('.')[-1]}"] = v
        elif sub.startswith("proj_out"):
            out[f"{dst}.to_out.0.{sub.split('.')[-1]}"] = _squeeze(v)
        else:
            raise KeyError(sub)

    def put_res(dst: str, sub: str, v: Tensor) -> None:
        layer, param = sub.rsplit(".", 1)
        out[f"{dst}.{_RES[layer]}.{param}"] = v

    for key, v in state.items():
        used.append(key)
        out.source = key
        if m := re.fullmatch(r"time_embed\.(0|2)\.(weight|bias)", key):
            out[f"time_embedding.linear_{1 if m[1] == '0' else 2}.{m[2]}"] = v
        elif m := re.fullmatch(r"input_blocks\.0\.0\.(weight|bias)", key):
            out[f"conv_in.{m[1]}"] = v
        elif m := re.fullmatch(r"input_blocks\.(\d+)\.(\d)\.(.+)", key):
            i, part, sub = int(m[1]), int(m[2]), m[3]
            tmpl = down[i]
            if sub.startswith("op."):
                out[f"{tmpl}.conv.{sub[3:]}"] = v
            elif part == 0 and tmpl.endswith("downsamplers.0"):  # resblock_updown: a residual down-sampler
                put_res(tmpl, sub, v)
            elif part == 0:
                put_res(tmpl.format(kind="resnets"), sub, v)
            else:
                put_attn(tmpl.format(kind="attentions"), sub, v)
        elif m := re.fullmatch(r"middle_block\.(\d)\.(.+)", key):
            part, sub = int(m[1]), m[2]
            if part == 1:
                put_attn("mid_block.attentions.0", sub, v)
            else:
                put_res(f"mid_block.resnets.{part // 2}", sub, v)
        elif m := re.fullmatch(r"output_blocks\.(\d+)\.(\d)\.(.+)", key):
            i, part, sub = int(m[1]), int(m[2]), m[3]
            lvl, j = divmod(i, lpb + 1)
            if sub.startswith("conv.") and part > 0 and not sub.startswith("conv_"):
                out[f"up_blocks.{lvl}.upsamplers.0.conv.{sub[5:]}"] = v
            elif part > 0 and j == lpb and (part == 2 or not _is_attention(sub)):  # resblock_updown up-sampler
                put_res(f"up_blocks.{lvl}.upsamplers.0", sub, v)
            elif part == 0:
                put_res(f"up_blocks.{lvl}.resnets.{j}", sub, v)
            else:
                put_attn(f"up_blocks.{lvl}.attentions.{j}", sub, v)
        elif m := re.fullmatch(r"out\.(0|2)\.(weight|bias)", key):
            out[f"{'conv_norm_out' if m[1] == '0' else 'conv_out'}.{m[2]}"] = v
        else:
            used.pop()
    return out, used


def _is_attention(sub: str) -> bool:
    return sub.split(".")[0] in ("norm", "qkv", "proj_out")


def convert_vae(state: Mapping[str, Tensor], kwargs: Mapping[str, Any]) -> tuple[dict[str, Tensor], list[str]]:
    """First-stage keys (without ``first_stage_model.``) -> (diffusers state dict, source keys used)."""
    levels = len(kwargs["block_out_channels"])
    out = _Converted()
    used: list[str] = []
    for key, v in state.items():
        used.append(key)
        out.source = key
        if m := re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(weight|bias)", key):
            name = {"norm_out": "conv_norm_out"}.get(m[2], m[2])
            out[f"{m[1]}.{name}.{m[3]}"] = v
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)", key):
            out[f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{_VAE_RES[m[3]]}.{m[4]}"] = v
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", key):
            out[f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)", key):
            out[f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{_VAE_RES[m[3]]}.{m[4]}"] = v
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key):
            out[f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.block_(1|2)\.(\w+)\.(weight|bias)", key):
            out[f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{_VAE_RES[m[3]]}.{m[4]}"] = v
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(weight|bias)", key):
            out[f"{m[1]}.mid_block.attentions.0.{_VAE_ATTN[m[2]]}.{m[3]}"] = _squeeze(v) if m[2] != "norm" else v
        elif re.fullmatch(r"(quant_conv|post_quant_conv)\.(weight|bias)|quantize\.embedding\.weight", key):
            out[key] = v
        else:
            used.pop()
    return out, used


def convert_checkpoint(
    state: Mapping[str, Tensor], config: Mapping[str, Any]
) -> tuple[UNet2DModel, VQModel | AutoencoderKL, dict[str, Any]]:
    """A full CompVis LDM state dict + its (OmegaConf-resolved) config -> (unet, vae, scheduler overrides).

    Raises :class:`UserError` naming the tensors that are neither mapped nor ignored, or missing.
    """
    params = config["model"]["params"]
    ukw = unet_kwargs(params["unet_config"]["params"])
    vae_cls, vkw = vae_kwargs(params["first_stage_config"]["target"], params["first_stage_config"]["params"])
    unet_src = {k[len(UNET_PREFIX) :]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    vae_src = {k[len(VAE_PREFIX) :]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    unet_sd, unet_used = convert_unet(unet_src, ukw)
    vae_sd, vae_used = convert_vae(vae_src, vkw)
    used = {UNET_PREFIX + k for k in unet_used} | {VAE_PREFIX + k for k in vae_used}
    leftover = [k for k in state if k not in used and not IGNORED.match(k)]
    if leftover:
        raise UserError(f"LDM checkpoint has {len(leftover)} tensors this converter does not know: {leftover[:8]}")
    if "scale_factor" in state:  # scale_by_std: a buffer set in training; MIDMs' code never applies it
        log.info(
            "the checkpoint's latent scale_factor %.6g is not applied: the official MIDMs code encodes and decodes "
            "with the first stage directly (models/midms.py)",
            float(state["scale_factor"]),
        )
    unet, vae = build_unet(ukw), vae_cls(**vkw)
    for name, module, sd, prefix in (("UNet", unet, unet_sd, UNET_PREFIX), ("autoencoder", vae, vae_sd, VAE_PREFIX)):
        expected = module.state_dict()
        if missing := sorted(set(expected) - set(sd)):
            raise UserError(f"LDM checkpoint lacks {len(missing)} {name} tensors, e.g. {missing[:6]}")
        if wrong := [k for k in expected if sd[k].shape != expected[k].shape]:
            shown = "; ".join(
                f"{prefix}{sd.origin[k]} (here {k}): file {tuple(sd[k].shape)}, config {tuple(expected[k].shape)}"
                for k in wrong[:4]
            )
            raise UserError(
                f"LDM checkpoint: {len(wrong)} {name} tensor(s) of another shape than its config.yaml builds: {shown}. "
                f"The checkpoint and config.yaml belong to different models: use the config.yaml that came with it."
            )
        module.load_state_dict(sd, strict=True)
    sched = {
        "num_train_timesteps": int(params.get("timesteps", 1000)),
        "beta_start": float(params.get("linear_start", SCHEDULER_CONFIG["beta_start"])),
        "beta_end": float(params.get("linear_end", SCHEDULER_CONFIG["beta_end"])),
        "scale_factor": float(params.get("scale_factor", 1.0)),
    }
    return unet, vae, sched


def load_compvis(ckpt: str | Path, config: str | Path | None = None) -> LatentPrior:
    """Load ``model.ckpt`` (``torch.load(weights_only=True)``) with ``config.yaml`` (default: next to it)."""
    ckpt = Path(ckpt).expanduser()
    config = Path(config).expanduser() if config else ckpt.with_name("config.yaml")
    for what, p in (("checkpoint", ckpt), ("config", config)):
        if not p.is_file():
            raise UserError(
                f"LDM {what} not found: {p}. Fix: put the CompVis LDM model.ckpt and its config.yaml there (e.g. "
                f"from https://github.com/CompVis/latent-diffusion#pretrained-ldms, or the MIDMs release), and set "
                f"{PRIOR_KEYS}.path=<model.ckpt> {PRIOR_KEYS}.config=<config.yaml>."
            )
    raw = load_checkpoint(ckpt, "the CompVis LDM checkpoint", "https://github.com/CompVis/latent-diffusion#model-zoo")
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    prior = prior_from_state(state, config)
    log.info("converted CompVis LDM %s (%s + UNet2DModel, scale_factor %s)", ckpt, prior.kind, prior.scale_factor)
    return prior


def prior_from_state(state: Mapping[str, Tensor], config: str | Path) -> LatentPrior:
    """A CompVis LDM state dict and the path of its ``config.yaml`` -> the prior (schedule from the config)."""
    unet, vae, sched = convert_checkpoint(state, OmegaConf.to_container(OmegaConf.load(config), resolve=True))
    scale = sched.pop("scale_factor")
    return LatentPrior(vae.eval(), unet.eval(), scale, {**SCHEDULER_CONFIG, **sched}, compvis=True)
