"""A loss network for the synthetic domain: a VGG19-shaped network trained to see what the losses compare.

The perceptual, feature-matching and contextual losses of CoCosNet, SPADE and MIDMs compare images through the
ImageNet VGG19, a network that perceives natural photos. Without its weights (a machine that cannot download them)
a random VGG19 is all there is, and its features do not carry colour or texture: those losses then teach the
generator nothing about them (docs/findings-2026-12.md). The synthetic dataset has the ground truth a perception
network needs, so one is trained for it here, with ``vgg_weights=domain``:

- the network: :class:`~midms.nn.vgg.VGG19Features` at the model's widths, on images in [-1, 1] (``"signed"``
  pre-processing of [0, 1] inputs; ``"none"`` where a model feeds [-1, 1], as SPADE does);
- what it is taught, at every layer the losses read (a 1×1 linear head per layer, dropped after training): each
  pixel's class, its region's colour, its texture kind (flat, noise, stripes) and the texture's detail (the image
  minus the region's colour: a texture's phase), averaged over the layer's receptive cells, so that two images
  whose features agree agree in those;
- its data: scenes of the *training* split only, each in its own style and in its seeded partner's (the training
  targets), never an evaluation scene (:func:`training_scenes` checks the split);
- the cache: ``<cache_dir>/loss_networks/<training data key>-<settings hash>/`` (``weights.safetensors`` and
  ``network.json`` with the file's SHA-256), written by an atomic rename under a file lock, as MIDMs' prior: every
  job on the same data with the same settings shares one network, and two jobs started together train it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from midms.errors import UserError
from midms.files import atomic_folder
from midms.nn.vgg import CONV_NAMES, VGG19Features

log = logging.getLogger(__name__)

#: bump when the training changes, so that old cache entries are not reused
VERSION = 1
WEIGHTS, INFO = "weights.safetensors", "network.json"
#: the layers taught (every layer a loss of CoCosNet, SPADE or MIDMs reads)
TAUGHT_LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu4_1", "relu4_2", "relu5_1",
                 "relu5_2")  # fmt: skip
TEXTURE_KINDS = 3  # flat, noise, stripes (midms.data.synthetic.TEXTURES)


@dataclass(frozen=True)
class DomainTraining:
    """The budget of the domain network's training (``model.domain_training``; MIDMs: ``vgg.training``)."""

    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    scenes: int = 512  # training scenes used (each in two styles)
    seed: int = 0


def training_scenes(dataset, scenes: int) -> dict[str, Tensor]:
    """The appearance targets of up to ``scenes`` scenes of ``dataset``, which must be a training split: each
    scene in its own style and in its seeded partner's (``dataset.appearance``), stacked."""
    if getattr(dataset, "split", None) != "train" or not hasattr(dataset, "appearance"):
        raise UserError(
            f"vgg_weights=domain trains its loss network on the training split of a dataset that knows each "
            f"pixel's class and appearance (dataset=synthetic); got {type(dataset).__name__} split "
            f"{getattr(dataset, 'split', '?')!r}. Set model.vgg_weights to torchvision, a VGG19 file, or random."
        )
    rows = []
    for index in range(min(scenes, len(dataset))):
        rows.append(dataset.appearance(index))
        rows.append(dataset.appearance(index, dataset.exemplar_index(index)))
    return {key: torch.from_numpy(np.stack([r[key] for r in rows])) for key in rows[0]}


class PerceptionHeads(nn.Module):
    """One 1×1 convolution per taught layer: class logits, colour, texture-kind logits and detail (RGB)."""

    def __init__(self, channels: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        outputs = num_classes + 3 + TEXTURE_KINDS + 3
        self.heads = nn.ModuleDict({name: nn.Conv2d(c, outputs, 1) for name, c in channels.items()})

    def losses(self, features: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy against the class and texture-kind fractions of each cell, L1 on colour and detail."""
        k = self.num_classes
        classes = F.one_hot(targets["labels"], k).permute(0, 3, 1, 2).float()
        kinds = F.one_hot(targets["texture"], TEXTURE_KINDS).permute(0, 3, 1, 2).float()
        total = {"class": 0.0, "colour": 0.0, "texture": 0.0, "detail": 0.0}
        for name, head in self.heads.items():
            out = head(features[name])
            size = out.shape[-2:]
            cls, colour, kind, detail = out.split([k, 3, TEXTURE_KINDS, 3], dim=1)
            total["class"] += -(F.adaptive_avg_pool2d(classes, size) * F.log_softmax(cls, 1)).sum(1).mean()
            total["texture"] += -(F.adaptive_avg_pool2d(kinds, size) * F.log_softmax(kind, 1)).sum(1).mean()
            total["colour"] += (colour - F.adaptive_avg_pool2d(targets["colour"], size)).abs().mean()
            total["detail"] += (detail - F.adaptive_avg_pool2d(targets["detail"], size)).abs().mean()
        return {key: value / len(self.heads) for key, value in total.items()}


def _he_init(vgg: VGG19Features) -> None:
    for conv in vgg.convs.values():  # keeps the feature scale through the 16 ReLU layers
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)


def train_domain_vgg(
    data: dict[str, Tensor], widths: Sequence[int], num_classes: int, training: DomainTraining
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Train the network on ``data`` (:func:`training_scenes`); returns its state dict and a summary."""
    gen = torch.Generator().manual_seed(training.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        vgg = VGG19Features(TAUGHT_LAYERS, weights=None, widths=widths, preprocess="signed", requires_grad=True)
        _he_init(vgg)
        channels = {name: int(widths[int(name[4]) - 1]) for name in TAUGHT_LAYERS}
        heads = PerceptionHeads(channels, num_classes)
    vgg.train()
    params = [*vgg.parameters(), *heads.parameters()]
    opt = torch.optim.Adam(params, lr=training.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, training.steps)
    n = data["image"].shape[0]
    start, curve = time.perf_counter(), []
    bar = tqdm(range(training.steps), desc="domain loss network", leave=False)
    for _ in bar:
        idx = torch.randint(0, n, (training.batch_size,), generator=gen)
        batch = {key: value[idx] for key, value in data.items()}
        terms = heads.losses(vgg((batch["image"] + 1) / 2), batch)
        loss = terms["class"] + terms["texture"] + 4 * (terms["colour"] + terms["detail"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append({key: float(value.detach()) for key, value in terms.items()})
        bar.set_postfix(loss=f"{float(loss):.3f}")
    vgg.eval().requires_grad_(False)
    state = {name: tensor.detach().contiguous() for name, tensor in vgg.convs.state_dict().items()}
    last = curve[-20:]
    summary = {
        "steps": training.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "first": curve[0],
        "last": {key: float(np.mean([c[key] for c in last])) for key in curve[0]},
        "images": n,
    }
    return state, summary


def cache_key(data_key: str, widths: Sequence[int], num_classes: int, training: DomainTraining) -> str:
    settings = {"widths": list(widths), "classes": num_classes, "training": asdict(training), "v": VERSION}
    blob = json.dumps(settings, sort_keys=True)
    return f"{data_key}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _read(folder: Path) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    try:
        return read_network(folder)
    except Exception as e:  # a truncated file, a disk error: trained again
        log.warning("the cached domain loss network at %s cannot be read (%s); training it again", folder, e)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def prepare_domain_vgg(
    dataset, widths: Sequence[int], cache_root: str | Path | None, training: DomainTraining
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The domain network's convolution weights (``conv1_1.weight``, ...) and its record: from the cache when
    this training data and these settings were trained before, else trained now (and cached)."""
    num_classes = int(dataset.num_classes)
    data_key = getattr(dataset, "dataset_key", "data")
    if cache_root is None:
        state, summary = train_domain_vgg(training_scenes(dataset, training.scenes), widths, num_classes, training)
        return state, {**summary, "sha256": None, "cache": None}
    folder = Path(cache_root) / "loss_networks" / cache_key(data_key, widths, num_classes, training)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        cached = _read(folder) if (folder / INFO).is_file() else None
        if cached is not None:
            state, info = cached
            log.info("domain loss network: cached at %s", folder)
            return state, {**info, "cache": str(folder)}
        state, summary = train_domain_vgg(training_scenes(dataset, training.scenes), widths, num_classes, training)

        def write(tmp: Path) -> None:
            save_file(state, tmp / WEIGHTS)
            digest = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
            info = {**summary, "sha256": digest, "data": data_key, "widths": list(widths)}
            (tmp / INFO).write_text(json.dumps(info, indent=1))

        atomic_folder(folder, write)
        info = json.loads((folder / INFO).read_text())
        log.info("domain loss network: trained in %.0f s, cached at %s", summary["seconds"], folder)
        return state, {**info, "cache": str(folder)}


def prepare_for(model, widths: Sequence[int], cache_root: str | Path | None, training: dict | None) -> dict:
    """:func:`prepare_domain_vgg` for a model at the start of its training: on its training split, without
    touching the run's random stream (the run draws the same whether the network was cached or not); records the
    network in ``model.protocol["loss_network"]`` and the time in ``model.stage_seconds``."""
    start = time.perf_counter()
    dataset = model.trainer.train_dataloader.dataset
    with torch.random.fork_rng(devices=[]):
        state, info = prepare_domain_vgg(dataset, widths, cache_root, DomainTraining(**(training or {})))
    model.protocol["loss_network"] = {
        "kind": "domain",
        **{k: info.get(k) for k in ("sha256", "cache", "steps", "last")},
    }
    model.stage_seconds["loss network"] = time.perf_counter() - start
    return state


def untrained(layers: Sequence[str], widths: Sequence[int] | None, preprocess: str) -> VGG19Features:
    """A model's loss network for ``vgg_weights=domain`` before training starts: random, marked as the domain one
    (``weights_id``), filled by :func:`load_into` with what :func:`prepare_for` gives. ``preprocess``: ``"signed"``
    where the model feeds [0, 1] images, ``"none"`` where it feeds [-1, 1] (the network's own range)."""
    vgg = VGG19Features(layers, weights=None, widths=widths, preprocess=preprocess)
    vgg.weights_id = "domain"
    return vgg


def load_into(vgg: VGG19Features, state: dict[str, Tensor]) -> None:
    """Copy the trained convolutions into a model's (random, same-width) loss network, in place."""
    expected = {f"{c}.{p}" for c in CONV_NAMES for p in ("weight", "bias")}
    if set(state) != expected:
        raise UserError(f"the domain loss network's weights are not a VGG19's: {sorted(set(state) ^ expected)[:4]}")
    vgg.convs.load_state_dict(state, strict=True)


# -- the domain network as a metric's feature extractor ----------------------------------------------------------

#: ``weights: domain`` of the VGG metrics: the network is trained on the run's synthetic training split
DOMAIN = "domain"


def read_network(folder: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A trained domain network's weights and record from its folder (``weights.safetensors``, ``network.json``),
    the file's SHA-256 checked against the record; a missing or altered file is an error naming it."""
    folder = Path(folder).expanduser()
    if not (folder / INFO).is_file() or not (folder / WEIGHTS).is_file():
        raise UserError(
            f"{folder} is not a domain network folder (it needs {WEIGHTS} and {INFO}, as "
            "<cache_dir>/loss_networks/<key>/ holds them after a run with vgg_weights=domain or weights: domain)."
        )
    info = json.loads((folder / INFO).read_text())
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    if digest != info.get("sha256"):
        raise UserError(f"{folder / WEIGHTS}: SHA-256 {digest} is not the one {INFO} records; train it again.")
    return load_file(folder / WEIGHTS), info


def feature_network(folder: str | Path, layers: Sequence[str]) -> VGG19Features:
    """The domain network of ``folder`` as a feature extractor of [0, 1] images (``weights_id``:
    ``domain:<SHA-256 prefix>``), for the VGG metrics on the synthetic set."""
    state, info = read_network(folder)
    vgg = VGG19Features(layers, weights=None, widths=info["widths"], preprocess="signed")
    load_into(vgg, state)
    vgg.weights_id = f"{DOMAIN}:{info['sha256'][:12]}"
    return vgg.eval()


def metric_network(dataset_cfg, cache_root: str | Path, widths: Sequence[int], training: dict | None) -> Path | None:
    """The folder of the domain network trained on the training split of ``dataset_cfg`` (trained now or read from
    the cache), or None when that dataset cannot teach one (it knows no pixel's appearance: not the synthetic set)."""
    from midms.data.build import dataset_factory

    dataset = dataset_factory(dataset_cfg)(split="train")
    if not hasattr(dataset, "appearance"):
        return None
    with torch.random.fork_rng(devices=[]):
        _state, info = prepare_domain_vgg(dataset, widths, cache_root, DomainTraining(**(training or {})))
    return Path(info["cache"])
