"""Feature spaces beyond Inception: DINOv2 and CLIP image embeddings, read from local Hugging Face folders.

Stein et al. ("Exposing flaws of generative model evaluation metrics and their unfair treatment of diffusion
models", NeurIPS 2023; https://github.com/layer6ai-labs/dgm-eval) found the Fréchet distance on DINOv2
ViT-L/14 features to agree with human judgement where Inception's does not; Jayasumana et al. ("Rethinking
FID: Towards a Better Evaluation Metric for Image Generation", CVPR 2024;
https://github.com/google-research/google-research/tree/master/cmmd) measure an MMD on CLIP ViT-L/14@336
embeddings. Both networks load through ``transformers`` from a local folder in the ``save_pretrained`` layout
(``config.json`` + ``model.safetensors``), never from the network:

- ``dinov2_vitl14`` (``facebook/dinov2-large``, 1024-d) and ``dinov2_vitb14`` (``facebook/dinov2-base``,
  768-d): each image resized to 224×224 with PIL bicubic (dgm-eval's ``DINOv2Encoder``), scaled to [0, 1],
  ImageNet mean/std; the feature is the final layer-normed CLS token (the hub model's output, HF
  ``pooler_output``);
- ``clip_vitl14_336`` (``openai/clip-vit-large-patch14-336``, 768-d): [0, 1] images resized to 336×336 with
  ``torch.nn.functional.interpolate(mode="bicubic")`` and CLIP's mean/std (CMMD's ``embedding.py``); the
  feature is ``image_embeds`` (after the visual projection) divided by its L2 norm.

``features(...)`` of a folder are memoised within an evaluation (one pass feeds every metric of the same space)
and, for the reference side, cached on disk under ``<cache_dir>/features/`` keyed by the data's content, the
space, its weights (SHA-256), the resize and the image size.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from midms.errors import MetricSkipped, UserError
from midms.files import atomic_write
from midms.metrics.base import SharedFeatures
from midms.metrics.fid import content_fingerprint
from midms.metrics.folders import list_images
from midms.weights import file_sha256

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class FeatureSpace:
    name: str
    hub_id: str
    family: str  # dinov2 | clip
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str  # recorded in the protocol

    def default_folder(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / "weights" / self.hub_id.replace("/", "--")


SPACES = {
    s.name: s
    for s in (
        FeatureSpace(
            "dinov2_vitl14", "facebook/dinov2-large", "dinov2", 224, IMAGENET_MEAN, IMAGENET_STD, "PIL bicubic to 224"
        ),  # fmt: skip
        FeatureSpace(
            "dinov2_vitb14", "facebook/dinov2-base", "dinov2", 224, IMAGENET_MEAN, IMAGENET_STD, "PIL bicubic to 224"
        ),  # fmt: skip
        FeatureSpace(
            "clip_vitl14_336",
            "openai/clip-vit-large-patch14-336",
            "clip",
            336,
            CLIP_MEAN,
            CLIP_STD,
            "torch bicubic to 336",
        ),  # fmt: skip
    )
}


def space(name: str) -> FeatureSpace:
    if name not in SPACES:
        raise UserError(f"unknown feature space {name!r}; known: {sorted(SPACES)}")
    return SPACES[name]


class Embedder:
    """A loaded network of one feature space: ``embed(uint8 B×3×H×W) -> float64 B×D`` (NumPy)."""

    def __init__(self, spec: FeatureSpace, folder: str | Path, device: str | torch.device = "cpu") -> None:
        self.spec, self.folder, self.device = spec, Path(folder), torch.device(device)
        weights = next((self.folder / f for f in WEIGHT_FILES if (self.folder / f).is_file()), None)
        if not (self.folder / "config.json").is_file() or weights is None:
            raise MetricSkipped(
                f"{spec.name} weights not found in {self.folder} (config.json and model.safetensors of "
                f"{spec.hub_id}). Fix: on a machine with internet run `hf download {spec.hub_id} --local-dir "
                f"{self.folder}` and copy the folder here, or set the metric's weights option to its path."
            )
        self.sha256 = file_sha256(weights)
        if spec.family == "dinov2":
            from transformers import Dinov2Model

            self.model = Dinov2Model.from_pretrained(self.folder, local_files_only=True)
        else:
            from transformers import CLIPVisionModelWithProjection

            self.model = CLIPVisionModelWithProjection.from_pretrained(self.folder, local_files_only=True)
        self.model = self.model.to(self.device).eval().requires_grad_(False)

    @property
    def identity(self) -> str:
        return f"{self.spec.name}:{self.spec.hub_id}:sha256:{self.sha256}"

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        size = self.spec.input_size
        if self.spec.family == "dinov2":  # PIL bicubic on the 8-bit image, as dgm-eval
            if images.shape[-2:] != (size, size):
                arrays = [np.asarray(Image.fromarray(im.permute(1, 2, 0).numpy()).resize((size, size), Image.BICUBIC))
                          for im in images]  # fmt: skip
                images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            x = images.float() / 255
        else:  # CMMD: bicubic interpolation of the [0, 1] float image
            x = F.interpolate(images.float() / 255, size=(size, size), mode="bicubic", align_corners=False)
        mean = torch.tensor(self.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> np.ndarray:
        out = self.model(pixel_values=self._prepare(images))
        if self.spec.family == "dinov2":
            feats = out.pooler_output
        else:
            feats = out.image_embeds
            feats = feats / feats.norm(dim=-1, keepdim=True)
        return feats.double().cpu().numpy()


def load_embedder(name: str, weights: str | None, cache_dir: Path, device: str | torch.device) -> Embedder:
    """The network of feature space ``name`` from ``weights`` (a folder) or ``<cache_dir>/weights/<hub id>``;
    ``MetricSkipped`` naming the folder and the fix when it is absent."""
    spec = space(name)
    return Embedder(spec, Path(weights) if weights else spec.default_folder(cache_dir), device)


def folder_features(
    embedder: Embedder,
    folder: Path,
    image_size: int,
    batch_size: int,
    label: str,
    shared: SharedFeatures | None = None,
) -> np.ndarray:
    """N×D features of every image of ``folder`` (sorted by name), brought to ``image_size`` first; the images come
    from ``shared`` (decoded once per scoring) when given."""
    paths = list(list_images(folder).values())
    batches = (shared or SharedFeatures()).batches(paths, batch_size, image_size)
    bar = tqdm(total=len(paths), desc=f"{embedder.spec.name} {label}", unit="img", leave=False)
    parts = []
    with bar:
        for batch in batches:
            parts.append(embedder.embed(batch))
            bar.update(len(batch))
    return np.concatenate(parts)


def reference_features(
    embedder: Embedder,
    real_dir: Path,
    image_size: int,
    batch_size: int,
    cache_dir: Path,
    dataset_key: str,
    shared: SharedFeatures | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Features of the real folder, from ``<cache_dir>/features/`` when an entry with the same key exists."""
    paths = list(list_images(real_dir).values())
    fields = {
        "dataset_key": dataset_key,
        "files": content_fingerprint(paths),
        "num_images": len(paths),
        "image_size": image_size,
        "space": embedder.identity,
        "resize": embedder.spec.resize,
        "format": _CACHE_FORMAT,
    }
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache_dir) / "features" / f"{embedder.spec.name}_{image_size}px_n{len(paths)}_{digest}.npz"
    info = {"num_reference": len(paths), "reference_features": str(path)}
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == fields:
                return z["feats"], {**info, "reference_features_cached": True}
    except FileNotFoundError:
        pass
    except Exception as e:  # truncated or foreign: recompute and overwrite
        log.warning("reference features %s are unreadable (%s); recomputing", path, e)
    feats = folder_features(embedder, real_dir, image_size, batch_size, "reference", shared)
    key = np.array(json.dumps(fields))
    atomic_write(path, lambda f: np.savez(f, feats=feats, key=key))
    return feats, {**info, "reference_features_cached": False}
