"""A loaded CompVis LDM computes as the original: the legacy qkv layout, attention against float64 references, the
autoencoder's x * sigmoid(x) and taming's nearest-code look-up."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from compvis_layout import CONFIG, compvis_unet, compvis_vq
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from midms.models.midms.compvis_ops import (
    AutoencoderAttnProcessor,
    Swish,
    UNetAttnProcessor,
    legacy_qkv,
    taming_quantize,
)
from midms.models.midms.ldm_convert import convert_checkpoint, prior_from_state


def _attention(channels: int, head_dim: int) -> Attention:
    torch.manual_seed(0)
    attn = Attention(channels, heads=channels // head_dim, dim_head=head_dim, norm_num_groups=8,
                     residual_connection=True, bias=True, upcast_softmax=True,
                     _from_deprecated_attn_block=True)  # fmt: skip
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
    return attn.eval()


def _reference(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head, projected, plus x; in float64."""
    a = {k: v.double() for k, v in attn.state_dict().items()}
    b, c, h, w = x.shape
    heads, d = attn.heads, c // attn.heads
    xs = x.double().reshape(b, c, h * w)
    n = F.group_norm(xs, attn.group_norm.num_groups, a["group_norm.weight"], a["group_norm.bias"], attn.group_norm.eps)
    n = n.transpose(1, 2)  # B×T×C
    q, k, v = (F.linear(n, a[f"{m}.weight"], a[f"{m}.bias"]).reshape(b, -1, heads, d).transpose(1, 2)
               for m in ("to_q", "to_k", "to_v"))  # fmt: skip
    out = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1) @ v  # B×heads×T×d
    out = F.linear(out.transpose(1, 2).reshape(b, h * w, c), a["to_out.0.weight"], a["to_out.0.bias"])
    return (xs + out.transpose(1, 2)).reshape(b, c, h, w)


@pytest.mark.parametrize(("processor", "head_dim"), [(UNetAttnProcessor, 8), (AutoencoderAttnProcessor, 32)])
def test_the_original_attention_orders_compute_the_same_function(processor, head_dim):
    attn = _attention(32, head_dim)
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        default = attn(x)
        attn.set_processor(processor())
        ours = attn(x)
    reference = _reference(attn, x)
    assert torch.allclose(ours.double(), reference, atol=2e-5)
    assert torch.allclose(default.double(), reference, atol=2e-5)
    assert not torch.equal(ours, default)  # the same function in another order: the last bits differ


def test_the_legacy_qkv_layout_is_rebuilt_from_the_converted_weights():
    """openaimodel's qkv conv holds [q_h, k_h, v_h] per head; the converter splits it, legacy_qkv puts it back."""
    sd = {**compvis_unet(ch=32), **compvis_vq()}
    unet, _, _ = convert_checkpoint(sd, CONFIG)
    attn = unet.mid_block.attentions[0]
    weight, bias = legacy_qkv(attn)
    p = "model.diffusion_model.middle_block.1."
    assert torch.equal(weight, sd[p + "qkv.weight"]) and torch.equal(bias, sd[p + "qkv.bias"])


def test_a_converted_ldm_computes_as_the_original(tmp_path):
    sd = {**compvis_unet(ch=32), **compvis_vq(n_embed=64)}
    prior = prior_from_state(sd, _config_file(tmp_path))
    assert prior.compvis
    processors = {type(m.processor) for m in prior.unet.modules() if isinstance(m, Attention)}
    assert processors == {UNetAttnProcessor}
    assert {type(m.processor) for m in prior.vae.modules() if isinstance(m, Attention)} == {AutoencoderAttnProcessor}
    assert not any(isinstance(m, nn.SiLU) for m in prior.vae.modules())  # every x * sigmoid(x) as written there
    assert any(isinstance(m, Swish) for m in prior.vae.modules()) and any(
        isinstance(m, nn.SiLU) for m in prior.unet.modules()
    )
    z = torch.randn(2, 3, 8, 8)
    codebook = prior.vae.quantize.embedding.weight
    with torch.no_grad():
        decoded = prior.decode(z)
        expected = prior.vae.decode(taming_quantize(z, codebook), force_not_quantize=True).sample
    assert torch.equal(decoded, expected)
    # the random prior of the tiny size keeps diffusers' defaults
    from midms.models.midms.prior import build_prior

    assert not build_prior(kind="ae", vae={"block_out_channels": [8, 8]}, unet=_tiny_unet()).compvis


def test_swish_is_x_times_sigmoid():
    x = torch.linspace(-6, 6, 101)
    assert torch.equal(Swish()(x), x * torch.sigmoid(x))
    assert torch.allclose(Swish()(x), F.silu(x), atol=1e-6)


def test_taming_quantize_takes_the_nearest_code_with_a_straight_through_gradient():
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(50, 3, generator=g)
    z = torch.randn(2, 3, 4, 5, generator=g, requires_grad=True)
    out = taming_quantize(z, codebook)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 3).double()
    nearest = torch.cdist(flat, codebook.double()).argmin(1)  # float64: no near-tie decides here
    expected = codebook[nearest].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def _config_file(tmp_path):
    import copy

    import yaml

    config = copy.deepcopy(CONFIG)
    config["model"]["params"]["first_stage_config"]["params"]["n_embed"] = 64
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tiny_unet() -> dict:
    return {"block_out_channels": [8, 8], "norm_num_groups": 4, "attention_head_dim": 4, "in_channels": 3,
            "out_channels": 3, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
            "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}  # fmt: skip


def test_the_default_processor_is_sdpa_for_the_random_prior():
    from midms.models.midms.prior import build_prior

    prior = build_prior(kind="ae", vae={"block_out_channels": [8, 8]}, unet=_tiny_unet())
    assert {type(m.processor) for m in prior.unet.modules() if isinstance(m, Attention)} == {AttnProcessor2_0}
