"""``model=controlnet_ipadapter``: a training-free row, Stable Diffusion 1.5 with a ControlNet and an IP-Adapter.

The input's structure goes in through a ControlNet (Zhang, Rao and Agrawala, ICCV 2023; lllyasviel/ControlNet:
``sd-controlnet-canny`` for edges, ``sd-controlnet-seg`` for ADE20K label maps, drawn as :mod:`.control` says); the
exemplar's appearance through an IP-Adapter image prompt (Ye et al., 2023; tencent-ailab/IP-Adapter,
``ip-adapter_sd15``: the exemplar's CLIP ViT-H/14 image embedding, projected to four extra cross-attention tokens).
Everything runs through diffusers' ``StableDiffusionControlNetPipeline`` and ``load_ip_adapter``, from local folders
only. The defaults are IP-Adapter's ``generate`` (``ip_adapter/ip_adapter.py``): the prompt "best quality, high
quality", its negative prompt, adapter scale 1.0, guidance 7.5, 30 steps; DDIM, the scheduler of its SD 1.5 demos.

Generation is at ``resolution`` (512, the networks' training size); the output is resized to the evaluation size
(bicubic, antialiased). Each pair is one pipeline call (diffusers gives one image prompt to all the prompts of a
call) with its initial noise from its own generator, seeded with ``seed`` and the pair's ids, so an output does not
depend on the batch it is in. Everything a reader needs (weights and their hub ids,
scheduler, steps, guidance, scales, prompts, sizes, dtype, the seeding rule) goes into :attr:`protocol`.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from midms.baselines.controlnet_ipadapter.control import CONTROLS, control_image
from PIL import Image
from torch import Tensor

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.models.base import TranslationModel
from midms.weights import file_sha256

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",  # Stable Diffusion 1.5's own
    "unipc": "UniPCMultistepScheduler",  # diffusers' ControlNet examples
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def missing_weights(base: Path, controlnet: Path, ip_adapter: Path, ip_weight: str, hub_ids: dict) -> list[str]:
    """Each absent folder or file, with its hub id and the command that fetches it."""
    wanted = [
        (base / "model_index.json", base, hub_ids.get("base"), "the Stable Diffusion 1.5 pipeline"),
        (controlnet / "config.json", controlnet, hub_ids.get("controlnet"), "the ControlNet"),
        (ip_adapter / ip_weight, ip_adapter, hub_ids.get("ip_adapter"), "the IP-Adapter weights"),
        (
            (ip_adapter / ip_weight).parent / "image_encoder" / "config.json",
            ip_adapter,
            hub_ids.get("ip_adapter"),
            "the IP-Adapter's image encoder",
        ),
    ]
    return [
        f"{what}: {path} (`hf download {hub} --local-dir {folder}` on a machine with internet, then copy it here)"
        for path, folder, hub, what in wanted
        if not path.is_file()
    ]


def pair_seed(seed: int, sample_id: str, exemplar_id: str) -> int:
    """The noise seed of one (input, exemplar) pair: ``seed`` plus the CRC-32 of ``"<id>|<exemplar_id>"``."""
    return (seed + zlib.crc32(f"{sample_id}|{exemplar_id}".encode())) % 2**63


class ControlNetIPAdapter(TranslationModel):
    """Stable Diffusion 1.5 + ControlNet (the input) + IP-Adapter (the exemplar); nothing to train.

    Args:
        data_spec: from the runner; the output size.
        base, controlnet, ip_adapter: local folders (diffusers layouts; ``ip_adapter`` as the hub repository, with
            ``ip_weight`` and ``image_encoder/`` beside it).
        hub_ids: ``{"base", "controlnet", "ip_adapter"}``: where each folder comes from (protocol, errors).
        control: ``edges``, ``ade20k`` or ``pose`` (:mod:`.control`); ``edge_channel`` for ``edges``.
        prompt, negative_prompt, scheduler, steps, guidance_scale, ip_adapter_scale, controlnet_scale: sampling.
        resolution: the generation size; ``seed``: of every pair's noise (:func:`pair_seed`).
        dtype: of the networks (``float32``; ``float16`` on a GPU).
    """

    trains = False

    def __init__(
        self,
        data_spec: DataSpec,
        base: str,
        controlnet: str,
        ip_adapter: str,
        control: str,
        hub_ids: dict | None = None,
        ip_weight: str = "models/ip-adapter_sd15.safetensors",
        edge_channel: int = 0,
        prompt: str = "best quality, high quality",
        negative_prompt: str = "monochrome, lowres, bad anatomy, worst quality, low quality",
        scheduler: str = "ddim",
        steps: int = 30,
        guidance_scale: float = 7.5,
        ip_adapter_scale: float = 1.0,
        controlnet_scale: float = 1.0,
        resolution: int = 512,
        seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__(data_spec)
        if control not in CONTROLS:
            raise UserError(f"model.control must be one of {CONTROLS}, got {control!r}")
        if scheduler not in SCHEDULERS:
            raise UserError(f"model.scheduler must be one of {sorted(SCHEDULERS)}, got {scheduler!r}")
        if dtype not in DTYPES:
            raise UserError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if resolution % 8:
            raise UserError(f"model.resolution must be a multiple of 8 (the autoencoder's factor), got {resolution}")
        hub_ids = dict(hub_ids or {})
        base_dir, control_dir, ip_dir = (Path(p).expanduser() for p in (base, controlnet, ip_adapter))
        missing = missing_weights(base_dir, control_dir, ip_dir, ip_weight, hub_ids)
        if missing:
            raise UserError(
                "model=controlnet_ipadapter loads its networks from local folders only; missing: "
                + "; ".join(missing)
                + ". Set model.weights.<base|controlnet|ip_adapter> to other folders if they are elsewhere."
            )
        self.control, self.edge_channel, self.resolution, self.seed = control, edge_channel, resolution, seed
        self.sampling = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "num_inference_steps": steps,
            "guidance_scale": guidance_scale,
            "controlnet_conditioning_scale": controlnet_scale,
        }
        self.pipe = self._load(base_dir, control_dir, ip_dir, ip_weight, scheduler, ip_adapter_scale, DTYPES[dtype])
        # the networks as submodules: the evaluator's model.to(device) moves the pipeline's own modules
        self.networks = torch.nn.ModuleDict(
            {name: getattr(self.pipe, name) for name in ("unet", "controlnet", "vae", "text_encoder", "image_encoder")}
        )
        ip_file = ip_dir / ip_weight
        self.protocol: dict[str, Any] = {
            "model": "controlnet_ipadapter",
            "weights": {
                "base": {"folder": str(base_dir), "hub_id": hub_ids.get("base")},
                "controlnet": {"folder": str(control_dir), "hub_id": hub_ids.get("controlnet")},
                "ip_adapter": {
                    "file": str(ip_file),
                    "hub_id": hub_ids.get("ip_adapter"),
                    "sha256": file_sha256(ip_file),
                },
            },
            "control": control,
            "scheduler": scheduler,
            **self.sampling,
            "ip_adapter_scale": ip_adapter_scale,
            "generation_size": resolution,
            "output_resize": f"{resolution} -> {data_spec.image_size} px, bicubic, antialiased",
            "dtype": dtype,
            "seed": f"per pair: {seed} + crc32('<id>|<exemplar_id>')",
        }

    @staticmethod
    def _load(base: Path, control: Path, ip_dir: Path, ip_weight: str, scheduler: str, scale: float, dtype):
        import diffusers
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

        local = {"local_files_only": True, "low_cpu_mem_usage": False}
        controlnet = ControlNetModel.from_pretrained(control, dtype=dtype, **local)
        pipe = StableDiffusionControlNetPipeline.from_pretrained(
            base, controlnet=controlnet, safety_checker=None, requires_safety_checker=False, dtype=dtype, **local
        )
        weight = Path(ip_weight)
        pipe.load_ip_adapter(
            str(ip_dir),
            subfolder=weight.parent.as_posix() if weight.parent != Path(".") else "",
            weight_name=weight.name,
            image_encoder_folder="image_encoder",
            **local,
        )
        pipe.image_encoder.to(dtype)
        pipe.set_ip_adapter_scale(scale)
        pipe.scheduler = getattr(diffusers, SCHEDULERS[scheduler]).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _image_embeds(self, exemplar: Tensor, guidance: bool) -> list[Tensor]:
        """The IP-Adapter's input for one exemplar (1×3×H×W): its CLIP embedding (its PIL image through the
        pipeline's feature extractor, as ``ip_adapter_image`` would be), after zeros for the unconditional half."""
        pixels = ((exemplar[0].float().clamp(-1, 1) + 1) * 127.5).round().byte()
        image = Image.fromarray(np.asarray(pixels.permute(1, 2, 0).cpu()))
        values = self.pipe.feature_extractor([image], return_tensors="pt").pixel_values
        embeds, negative = self.pipe.encode_image(values.to(self.device), self.device, 1)
        return [torch.cat([negative, embeds])[:, None] if guidance else embeds[:, None]]

    @torch.no_grad()
    def translate(self, batch: dict) -> Tensor:
        """Each pair is its own pipeline call: diffusers' pipeline gives one image prompt to all the prompts of a
        call (it tiles ``ip_adapter_image_embeds`` over them), so a batched call would mix the exemplars."""
        s, dtype = self.sampling, self.pipe.unet.dtype
        guidance = s["guidance_scale"] > 1
        controls = control_image(batch["semantics"], self.control, self.resolution, self.edge_channel)
        outputs = []
        for i, (sample_id, exemplar_id) in enumerate(zip(batch["id"], batch["exemplar_id"], strict=True)):
            generator = torch.Generator().manual_seed(pair_seed(self.seed, sample_id, exemplar_id))
            image = self.pipe(
                prompt=s["prompt"],
                negative_prompt=s["negative_prompt"] if guidance else None,
                image=controls[i : i + 1].to(self.device, dtype),
                ip_adapter_image_embeds=self._image_embeds(batch["exemplar"][i : i + 1], guidance),
                num_inference_steps=s["num_inference_steps"],
                guidance_scale=s["guidance_scale"],
                controlnet_conditioning_scale=s["controlnet_conditioning_scale"],
                generator=generator,
                height=self.resolution,
                width=self.resolution,
                output_type="pt",
            ).images  # 1×3×res×res in [0, 1]
            outputs.append(image.float())
        out = torch.cat(outputs)
        out = F.interpolate(out, size=batch["exemplar"].shape[-2:], mode="bicubic", antialias=True, align_corners=False)
        return (out * 2 - 1).clamp(-1, 1)
