"""The latent diffusion prior: paper-size parameter counts, CompVis key conversion, loading and its errors."""

from __future__ import annotations

import compvis_layout
import pytest
import torch
import yaml
from compvis_layout import CONFIG, compvis_unet, compvis_vq
from diffusers import UNet2DModel, VQModel
from omegaconf import OmegaConf

from midms.errors import UserError
from midms.models.midms.encoders import MatchingNetwork
from midms.models.midms.ldm_convert import convert_checkpoint, load_compvis
from midms.models.midms.prior import build_prior, load_diffusers

CONF = __import__("pathlib").Path(__file__).resolve().parents[2] / "conf"
PAPER = OmegaConf.load(CONF / "model" / "midms.yaml").sizes.paper


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_size_parameter_counts_match_official_within_one_percent():
    # official counts: CelebA-HQ LDM UNet 274.1M, VQ-f4 55.3M, MIDMs matching networks (15-channel edges) 24.9M
    with torch.device("meta"):  # shapes only: nothing is allocated
        unet, vae = UNet2DModel(**PAPER.prior.unet), VQModel(**PAPER.prior.vae)
        net = MatchingNetwork(15, 3, **PAPER.matching)
    for got, official in ((_count(unet), 274.1e6), (_count(vae), 55.3e6), (_count(net), 24.9e6)):
        assert abs(got - official) / official < 0.01, (got, official)


def _checkpoint():
    torch.manual_seed(0)
    sd = {**compvis_unet(ch=32), **compvis_vq()}
    sd.update({"betas": torch.rand(1000), "alphas_cumprod": torch.rand(1000), "model_ema.decay": torch.tensor(0.99)})
    return sd


def test_compvis_conversion_accounts_for_every_tensor():
    sd = _checkpoint()
    unet, vae, sched = convert_checkpoint(sd, CONFIG)
    src_unet = sum(v.numel() for k, v in sd.items() if k.startswith("model.diffusion_model."))
    src_vae = sum(v.numel() for k, v in sd.items() if k.startswith("first_stage_model."))
    assert _count(unet) == src_unet and _count(vae) == src_vae  # every parameter element came from the file
    u = unet.state_dict()
    p = "model.diffusion_model."
    assert torch.equal(u["conv_in.weight"], sd[p + "input_blocks.0.0.weight"])
    assert torch.equal(
        u["down_blocks.1.resnets.0.conv_shortcut.weight"], sd[p + "input_blocks.3.0.skip_connection.weight"]
    )
    # legacy qkv: per head [q, k, v]; 64 channels, 16 per head -> 4 heads
    qkv = sd[p + "middle_block.1.qkv.weight"][:, :, 0].reshape(4, 3, 16, 64)
    assert torch.equal(u["mid_block.attentions.0.to_k.weight"], qkv[:, 1].reshape(64, 64))
    assert torch.equal(u["up_blocks.0.upsamplers.0.conv.weight"], sd[p + "output_blocks.1.2.conv.weight"])
    v = vae.state_dict()
    f = "first_stage_model."
    assert torch.equal(v["decoder.up_blocks.0.resnets.1.conv1.weight"], sd[f + "decoder.up.1.block.1.conv1.weight"])
    assert torch.equal(v["quantize.embedding.weight"], sd[f + "quantize.embedding.weight"])
    assert sched["beta_start"] == 0.0015 and sched["scale_factor"] == 1.0
    with pytest.raises(UserError, match="does not know"):
        convert_checkpoint({**sd, "model.diffusion_model.extra.weight": torch.zeros(1)}, CONFIG)
    with pytest.raises(UserError, match="lacks"):
        convert_checkpoint({k: v for k, v in sd.items() if not k.endswith("out.2.bias")}, CONFIG)
    wrong = {**sd, p + "middle_block.1.qkv.weight": torch.zeros(96, 64, 1)}  # 3 heads' worth: another model's
    with pytest.raises(UserError, match="another shape") as info:
        convert_checkpoint(wrong, CONFIG)
    message = str(info.value)  # the file's name and ours, both shapes
    assert p + "middle_block.1.qkv.weight" in message and "mid_block.attentions.0.to_q.weight" in message
    assert "(32, 64)" in message and "(64, 64)" in message


def test_real_celebahq_ldm_layout_converts_onto_the_paper_size(monkeypatch):
    """The CelebA-HQ LDM's own layout (CompVis ``celebahq-ldm-vq-4.yaml``: UNet 224 × (1, 2, 3, 4), 2 res blocks,
    attention at ds 2/4/8, 32-channel heads; VQ-f4 128 × (1, 2, 4), 8192 codes), generated at full size,
    converts with every tensor used into exactly the modules of ``model.size=paper``: the real checkpoint's
    keys and shapes, short of its weights, which cannot be downloaded here."""
    monkeypatch.setattr(compvis_layout, "FILL", torch.empty)  # 330M values: layout only, no RNG time
    unet_p = {"image_size": 64, "in_channels": 3, "out_channels": 3, "model_channels": 224, "num_res_blocks": 2}
    unet_p |= {"attention_resolutions": [8, 4, 2], "channel_mult": [1, 2, 3, 4], "num_head_channels": 32}
    dd = {"double_z": False, "z_channels": 3, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128}
    dd |= {"ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    config = {"model": {"params": {"linear_start": 0.0015, "linear_end": 0.0195, "timesteps": 1000}}}
    config["model"]["params"]["unet_config"] = {"params": unet_p}
    config["model"]["params"]["first_stage_config"] = {
        "target": "ldm.models.autoencoder.VQModelInterface",
        "params": {"embed_dim": 3, "n_embed": 8192, "ddconfig": dd},
    }
    sd = {**compvis_unet(ch=224, mult=(1, 2, 3, 4), nrb=2, attn=(2, 4, 8)), **compvis_vq(128, (1, 2, 4), 2, 3, 8192)}
    unet, vae, _ = convert_checkpoint(sd, config)
    with torch.device("meta"):
        paper_unet, paper_vae = UNet2DModel(**PAPER.prior.unet), VQModel(**PAPER.prior.vae)
    for got, want in ((unet, paper_unet), (vae, paper_vae)):
        assert {k: v.shape for k, v in got.state_dict().items()} == {k: v.shape for k, v in want.state_dict().items()}
    assert _count(unet) == sum(v.numel() for k, v in sd.items() if k.startswith("model.diffusion_model."))
    assert abs(_count(unet) - 274.1e6) / 274.1e6 < 0.01 and abs(_count(vae) - 55.3e6) / 55.3e6 < 0.01


def test_load_compvis_files_and_missing_file_errors(tmp_path):
    torch.save({"state_dict": _checkpoint()}, tmp_path / "model.ckpt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    prior = load_compvis(tmp_path / "model.ckpt")
    z = prior.encode(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert z.shape == (1, 3, 16, 16) and prior.eps(z, 500).shape == z.shape
    with pytest.raises(UserError, match="config not found"):
        load_compvis(tmp_path / "model.ckpt", tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="checkpoint not found.*model.sizes.paper.prior.path"):
        build_prior(source="compvis", path=str(tmp_path / "missing.ckpt"))


def test_the_documented_override_keys_load_a_compvis_ldm(tmp_path):
    """docs/models.md, conf/model/midms.yaml: model.sizes.paper.prior.{source,path,config} select a CompVis LDM."""
    import hydra
    from hydra import compose, initialize_config_dir

    from midms.data.contract import DataSpec

    sd = _checkpoint()
    torch.save({"state_dict": sd}, tmp_path / "model.ckpt")
    (tmp_path / "ldm.yaml").write_text(yaml.safe_dump(CONFIG))
    keys = "model.sizes.paper.prior"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["dataset=synthetic", "model=midms", "model.size=paper", "train=false",
                                 f"{keys}.source=compvis", f"{keys}.path={tmp_path / 'model.ckpt'}",
                                 f"{keys}.config={tmp_path / 'ldm.yaml'}"])  # fmt: skip
    spec = DataSpec(semantic_nc=4, image_size=32, num_classes=4, has_target=True)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=spec)
    assert model.prior.compvis and torch.equal(
        model.prior.unet.conv_in.weight, sd["model.diffusion_model.input_blocks.0.0.weight"]
    )
    with pytest.raises(UserError, match=f"{keys}.path=<model.ckpt>"):
        build_prior(source="compvis", path=str(tmp_path / "missing.ckpt"))


def test_diffusers_folder_loads_and_missing_hub_model_is_a_clear_error(tmp_path, monkeypatch):
    prior = build_prior(
        vae={"block_out_channels": [8], "norm_num_groups": 4, "num_vq_embeddings": 8},
        unet={
            "block_out_channels": [8, 8],
            "norm_num_groups": 4,
            "attention_head_dim": 4,
            "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
            "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
        },
    )
    prior.unet.save_pretrained(tmp_path / "ldm" / "unet")
    prior.vae.save_pretrained(tmp_path / "ldm" / "vqvae")
    loaded = load_diffusers(str(tmp_path / "ldm"))
    assert torch.equal(loaded.unet.conv_in.weight, prior.unet.conv_in.weight) and loaded.kind == "vq"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="CompVis/ldm-celebahq-256.*not available locally.*unet/"):
        build_prior(source="diffusers", path="CompVis/ldm-celebahq-256")


# the lsun_churches-ldm-kl-8 config of the latent-diffusion model zoo (CompVis/latent-diffusion,
# models/ldm/lsun_churches256/config.yaml), the parts the converter reads
LSUN_CONFIG = {
    "model": {
        "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
        "params": {
            "linear_start": 0.0015,
            "linear_end": 0.0155,
            "timesteps": 1000,
            "scale_by_std": True,
            "unet_config": {
                "params": {
                    "image_size": 32,
                    "in_channels": 4,
                    "out_channels": 4,
                    "model_channels": 192,
                    "attention_resolutions": [1, 2, 4, 8],
                    "num_res_blocks": 2,
                    "channel_mult": [1, 2, 2, 4, 4],
                    "num_heads": 8,
                    "use_scale_shift_norm": True,
                    "resblock_updown": True,
                }
            },
            "first_stage_config": {
                "target": "ldm.models.autoencoder.AutoencoderKL",
                "params": {
                    "embed_dim": 4,
                    "ddconfig": {
                        "double_z": True,
                        "z_channels": 4,
                        "resolution": 256,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 128,
                        "ch_mult": [1, 2, 4, 4],
                        "num_res_blocks": 2,
                        "attn_resolutions": [],
                        "dropout": 0.0,
                    },
                },
            },
        },
    }
}
# parameter counts of the official modules built from that config (openaimodel.UNetModel; the first stage's
# Encoder + Decoder + quant_conv + post_quant_conv), and their tensor counts
LSUN_UNET_PARAMETERS, LSUN_UNET_TENSORS = 294_966_916, 520
LSUN_VAE_PARAMETERS, LSUN_VAE_TENSORS = 83_653_863, 248
LSUN_SCALE_FACTOR = 0.22765929  # the checkpoint's scale_factor buffer (scale_by_std), which MIDMs never applies


def _lsun_checkpoint() -> dict:
    unet = LSUN_CONFIG["model"]["params"]["unet_config"]["params"]
    dd = LSUN_CONFIG["model"]["params"]["first_stage_config"]["params"]["ddconfig"]
    sd = compvis_unet(192, tuple(unet["channel_mult"]), 2, (1, 2, 4, 8), 4, 4, scale_shift=True, updown=True)
    sd.update(compvis_vq(dd["ch"], tuple(dd["ch_mult"]), 2, 4, kl=True))
    sd.update({"betas": torch.rand(1000), "scale_factor": torch.tensor(LSUN_SCALE_FACTOR)})
    return sd


def test_the_lsun_churches_ldm_layout_converts_strictly_at_full_size(monkeypatch, tmp_path, caplog):
    """The KL-f8 LDM of LSUN-Churches (num_heads, use_scale_shift_norm, resblock_updown, the scale_factor buffer)
    generated at full size: every tensor mapped, the official parameter counts, the schedule from its config, and
    no latent scaling, as the official MIDMs code (it encodes and decodes with the first stage directly)."""
    monkeypatch.setattr(compvis_layout, "FILL", torch.empty)  # 380M values: layout only, no RNG time
    sd = _lsun_checkpoint()
    assert sum(k.startswith("model.diffusion_model.") for k in sd) == LSUN_UNET_TENSORS
    assert sum(k.startswith("first_stage_model.") for k in sd) == LSUN_VAE_TENSORS
    (tmp_path / "model.ckpt").touch()  # 1.5 GB not written to disk: torch.load hands the dict over
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: {"state_dict": sd})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(LSUN_CONFIG))
    with caplog.at_level("INFO"):
        prior = load_compvis(tmp_path / "model.ckpt")
    assert _count(prior.unet) == LSUN_UNET_PARAMETERS and _count(prior.vae) == LSUN_VAE_PARAMETERS
    assert prior.kind == "kl" and prior.latent_channels == 4 and prior.scale_factor == 1.0
    assert "0.227659" in caplog.text  # the buffer's value is reported, not applied
    sched = prior.scheduler().config
    assert sched.beta_end == 0.0155 and sched.beta_start == 0.0015 and sched.beta_schedule == "scaled_linear"
    heads = {m.heads for m in prior.unet.modules() if type(m).__name__ == "Attention"}
    assert heads == {8}  # num_heads: eight heads at every level, whatever its width
