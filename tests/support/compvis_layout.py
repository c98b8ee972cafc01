"""A CompVis LDM state dict generated from the openaimodel / taming layouts (not from the converter): the UNet
(``model.diffusion_model.*``) and the VQ autoencoder (``first_stage_model.*``), and a small config for them."""

from __future__ import annotations

import torch

FILL = torch.randn  # values of the generated tensors (a layout-only test swaps in torch.empty)


def _add(sd, key, *shape):
    sd[key] = FILL(*shape)


def _resblock(sd, p, cin, cout, emb, scale_shift=False):
    for n, c in (("in_layers.0", cin), ("out_layers.0", cout)):
        _add(sd, f"{p}.{n}.weight", c), _add(sd, f"{p}.{n}.bias", c)
    _add(sd, f"{p}.in_layers.2.weight", cout, cin, 3, 3), _add(sd, f"{p}.in_layers.2.bias", cout)
    e = 2 * cout if scale_shift else cout  # use_scale_shift_norm: the embedding gives a scale and a shift
    _add(sd, f"{p}.emb_layers.1.weight", e, emb), _add(sd, f"{p}.emb_layers.1.bias", e)
    _add(sd, f"{p}.out_layers.3.weight", cout, cout, 3, 3), _add(sd, f"{p}.out_layers.3.bias", cout)
    if cin != cout:
        _add(sd, f"{p}.skip_connection.weight", cout, cin, 1, 1), _add(sd, f"{p}.skip_connection.bias", cout)


def _attn(sd, p, c):
    _add(sd, f"{p}.norm.weight", c), _add(sd, f"{p}.norm.bias", c)
    _add(sd, f"{p}.qkv.weight", 3 * c, c, 1), _add(sd, f"{p}.qkv.bias", 3 * c)
    _add(sd, f"{p}.proj_out.weight", c, c, 1), _add(sd, f"{p}.proj_out.bias", c)


def compvis_unet(
    ch=8, mult=(1, 2), nrb=1, attn=(2,), cin=3, cout=3, prefix="model.diffusion_model.", scale_shift=False, updown=False
):
    """openaimodel.UNetModel's state dict; ``scale_shift``: use_scale_shift_norm; ``updown``: resblock_updown
    (the samplers are residual blocks, ``ResBlock(down=True)`` / ``ResBlock(up=True)``, instead of convolutions)."""
    sd: dict = {}
    emb = 4 * ch

    def res(p, cin_, cout_):
        _resblock(sd, p, cin_, cout_, emb, scale_shift)

    _add(sd, "time_embed.0.weight", emb, ch), _add(sd, "time_embed.0.bias", emb)
    _add(sd, "time_embed.2.weight", emb, emb), _add(sd, "time_embed.2.bias", emb)
    _add(sd, "input_blocks.0.0.weight", ch, cin, 3, 3), _add(sd, "input_blocks.0.0.bias", ch)
    cur, chans, ds, idx = ch, [ch], 1, 1
    for level, m in enumerate(mult):
        for _ in range(nrb):
            res(f"input_blocks.{idx}.0", cur, m * ch)
            cur = m * ch
            if ds in attn:
                _attn(sd, f"input_blocks.{idx}.1", cur)
            chans.append(cur)
            idx += 1
        if level != len(mult) - 1:
            if updown:
                res(f"input_blocks.{idx}.0", cur, cur)
            else:
                _add(sd, f"input_blocks.{idx}.0.op.weight", cur, cur, 3, 3)
                _add(sd, f"input_blocks.{idx}.0.op.bias", cur)
            chans.append(cur)
            ds, idx = ds * 2, idx + 1
    res("middle_block.0", cur, cur), _attn(sd, "middle_block.1", cur)
    res("middle_block.2", cur, cur)
    idx = 0
    for level, m in list(enumerate(mult))[::-1]:
        for i in range(nrb + 1):
            res(f"output_blocks.{idx}.0", cur + chans.pop(), m * ch)
            cur, part = m * ch, 1
            if ds in attn:
                _attn(sd, f"output_blocks.{idx}.1", cur)
                part = 2
            if level and i == nrb:
                if updown:
                    res(f"output_blocks.{idx}.{part}", cur, cur)
                else:
                    _add(sd, f"output_blocks.{idx}.{part}.conv.weight", cur, cur, 3, 3)
                    _add(sd, f"output_blocks.{idx}.{part}.conv.bias", cur)
                ds //= 2
            idx += 1
    _add(sd, "out.0.weight", ch), _add(sd, "out.0.bias", ch)
    _add(sd, "out.2.weight", cout, ch, 3, 3), _add(sd, "out.2.bias", cout)
    return {prefix + k: v for k, v in sd.items()}


def _vres(sd, p, cin, cout):
    _add(sd, f"{p}.norm1.weight", cin), _add(sd, f"{p}.norm1.bias", cin)
    _add(sd, f"{p}.conv1.weight", cout, cin, 3, 3), _add(sd, f"{p}.conv1.bias", cout)
    _add(sd, f"{p}.norm2.weight", cout), _add(sd, f"{p}.norm2.bias", cout)
    _add(sd, f"{p}.conv2.weight", cout, cout, 3, 3), _add(sd, f"{p}.conv2.bias", cout)
    if cin != cout:
        _add(sd, f"{p}.nin_shortcut.weight", cout, cin, 1, 1), _add(sd, f"{p}.nin_shortcut.bias", cout)


def _vmid(sd, p, c):
    _vres(sd, f"{p}.block_1", c, c), _vres(sd, f"{p}.block_2", c, c)
    _add(sd, f"{p}.attn_1.norm.weight", c), _add(sd, f"{p}.attn_1.norm.bias", c)
    for n in ("q", "k", "v", "proj_out"):
        _add(sd, f"{p}.attn_1.{n}.weight", c, c, 1, 1), _add(sd, f"{p}.attn_1.{n}.bias", c)


def compvis_vq(ch=32, mult=(1, 2), nrb=1, z=3, n_embed=16, prefix="first_stage_model.", kl=False):
    """taming's VQModel (or, with ``kl``, ldm's AutoencoderKL: double_z, no codebook) state dict."""
    sd: dict = {}
    _add(sd, "encoder.conv_in.weight", ch, 3, 3, 3), _add(sd, "encoder.conv_in.bias", ch)
    cur = ch
    for lvl, m in enumerate(mult):
        for j in range(nrb):
            _vres(sd, f"encoder.down.{lvl}.block.{j}", cur, m * ch)
            cur = m * ch
        if lvl != len(mult) - 1:
            _add(sd, f"encoder.down.{lvl}.downsample.conv.weight", cur, cur, 3, 3)
            _add(sd, f"encoder.down.{lvl}.downsample.conv.bias", cur)
    _vmid(sd, "encoder.mid", cur)
    _add(sd, "encoder.norm_out.weight", cur), _add(sd, "encoder.norm_out.bias", cur)
    moments = 2 * z if kl else z  # double_z: mean and log-variance
    _add(sd, "encoder.conv_out.weight", moments, cur, 3, 3), _add(sd, "encoder.conv_out.bias", moments)
    _add(sd, "quant_conv.weight", moments, moments, 1, 1), _add(sd, "quant_conv.bias", moments)
    if not kl:
        _add(sd, "quantize.embedding.weight", n_embed, z)
    _add(sd, "post_quant_conv.weight", z, z, 1, 1), _add(sd, "post_quant_conv.bias", z)
    _add(sd, "decoder.conv_in.weight", cur, z, 3, 3), _add(sd, "decoder.conv_in.bias", cur)
    _vmid(sd, "decoder.mid", cur)
    for lvl in reversed(range(len(mult))):
        for j in range(nrb + 1):
            _vres(sd, f"decoder.up.{lvl}.block.{j}", cur, mult[lvl] * ch)
            cur = mult[lvl] * ch
        if lvl != 0:
            _add(sd, f"decoder.up.{lvl}.upsample.conv.weight", cur, cur, 3, 3)
            _add(sd, f"decoder.up.{lvl}.upsample.conv.bias", cur)
    _add(sd, "decoder.norm_out.weight", cur), _add(sd, "decoder.norm_out.bias", cur)
    _add(sd, "decoder.conv_out.weight", 3, cur, 3, 3), _add(sd, "decoder.conv_out.bias", 3)
    return {prefix + k: v for k, v in sd.items()}


CONFIG = {
    "model": {
        "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
        "params": {
            "linear_start": 0.0015,
            "linear_end": 0.0195,
            "timesteps": 1000,
            "scale_factor": 1.0,
            "unet_config": {
                "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": {
                    "image_size": 8,
                    "in_channels": 3,
                    "out_channels": 3,
                    "model_channels": 32,
                    "attention_resolutions": [2],
                    "num_res_blocks": 1,
                    "channel_mult": [1, 2],
                    "num_head_channels": 16,
                },
            },
            "first_stage_config": {
                "target": "ldm.models.autoencoder.VQModelInterface",
                "params": {
                    "embed_dim": 3,
                    "n_embed": 16,
                    "ddconfig": {
                        "double_z": False,
                        "z_channels": 3,
                        "resolution": 32,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 32,
                        "ch_mult": [1, 2],
                        "num_res_blocks": 1,
                        "attn_resolutions": [],
                        "dropout": 0.0,
                    },
                },
            },
        },
    }
}
