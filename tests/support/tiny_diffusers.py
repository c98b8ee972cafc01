"""Tiny random Stable Diffusion, ControlNet and IP-Adapter weights in the hub repositories' folder layouts.

``write_tiny_weights(root)`` saves, with the libraries' own ``save_pretrained``: a Stable Diffusion pipeline
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``feature_extractor/``),
a ControlNet made from its UNet, and an IP-Adapter repository (``models/ip-adapter_sd15.safetensors`` with the
``image_proj`` / ``ip_adapter`` tensors diffusers' ``load_ip_adapter`` expects, ``models/image_encoder/``). The model
under test then loads them through exactly the code that loads the released ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _byte_characters() -> list[str]:
    """The 256 printable stand-ins of bytes of a byte-level BPE vocabulary (GPT-2's table)."""
    codes = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    extra = [b for b in range(256) if b not in codes]
    return [chr(c) for c in codes] + [chr(256 + i) for i in range(len(extra))]


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_characters()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77), len(vocab)


def write_tiny_weights(root: Path, seed: int = 0) -> dict[str, Path]:
    """The three folders (``base``, ``controlnet``, ``ip_adapter``) under ``root``; returns their paths."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    cross, image_embed = 16, 12
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 4, 4, 4))
    # a trained ControlNet's "zero convolutions" are not zero any more, and its condition encoder passes the condition
    # on: at PyTorch's initialisation (and zero convolutions) the tiny network's input would have no visible effect
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    for conv in [*zero_convs, *controlnet.controlnet_cond_embedding.modules()]:
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.normal_(conv.weight, std=0.5)
            torch.nn.init.zeros_(conv.bias)
    vae = AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
    )
    tokenizer, vocab_size = _tokenizer(root / "tokenizer_files")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=cross,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=vocab_size,
            max_position_embeddings=77,
            projection_dim=cross,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    folders = {"base": root / "sd15", "controlnet": root / "controlnet", "ip_adapter": root / "ip_adapter"}
    StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=processor,
        image_encoder=None,
        requires_safety_checker=False,
    ).save_pretrained(folders["base"])
    controlnet.save_pretrained(folders["controlnet"])

    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            image_size=32,
            patch_size=8,
            projection_dim=image_embed,
        )
    )
    image_encoder.save_pretrained(folders["ip_adapter"] / "models" / "image_encoder")
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * cross, image_embed) * 0.5,  # four tokens of the text width
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1  # the released numbering: every cross-attention layer in unet.attn_processors order, odd ids
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attention = unet.get_submodule(name.removesuffix(".processor"))
            hidden = attention.to_k.out_features
            tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross)
            tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross)
            key += 2
    save_file(tensors, folders["ip_adapter"] / "models" / "ip-adapter_sd15.safetensors")
    return folders
