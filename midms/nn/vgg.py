"""The shared VGG19 feature extractor (perceptual and contextual losses, the VGG-based metrics).

One module, two sets of pretrained weights, each with the pre-processing it was trained with:

``weights="torchvision"``
    torchvision's ImageNet VGG19 (``vgg19-dcbb9e9d.pth``), read from torchvision's own cache
    ``torch.hub.get_dir()/checkpoints/``; inputs are normalised with the ImageNet mean and std.
a path to CoCosNet's ``vgg19_conv.pth``
    the Caffe-converted VGG19 that CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for
    Exemplar-based Image Translation", CVPR 2020, https://github.com/microsoft/CoCosNet) and MIDMs load
    for their losses. Its state dict has one entry per convolution, ``conv{block}_{index}.weight`` and
    ``.bias`` (32 tensors; see ``VGG19_feature_color_torchversion`` in CoCosNet's
    ``models/networks/correspondence.py``), and it expects Caffe inputs: BGR channel order, 0-255 range,
    the Caffe ImageNet mean subtracted and no division by a standard deviation (``vgg_preprocess`` in
    CoCosNet's ``util/util.py``).

Inputs are always RGB images in [0, 1] (B×3×H×W); the module applies the pre-processing itself. The
output is a dict ``layer name -> feature map`` for the requested layers, named as in the VGG papers:
``conv1_1`` .. ``conv5_4``, ``relu1_1`` .. ``relu5_4`` and ``pool1`` .. ``pool5``.

Nothing is downloaded: a missing weights file raises :class:`WeightsUnavailable` naming the file, where it
goes and how to get it. Tests build small randomly initialised networks with the same layer naming
(``weights=None`` with ``widths``, or :meth:`VGG19Features.from_module`) that run through the same
loading and forward code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midms.errors import UserError
from midms.weights import load_checkpoint, verified_sha256

log = logging.getLogger(__name__)

#: torchvision's file name for the ImageNet VGG19 (``VGG19_Weights.IMAGENET1K_V1``)
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_URL = f"https://download.pytorch.org/models/{TORCHVISION_VGG19_FILE}"

#: output channels of each block of VGG19 (configuration "E" of Simonyan & Zisserman, ICLR 2015)
VGG19_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
#: convolutions per block
VGG19_DEPTHS: tuple[int, ...] = (2, 2, 4, 4, 4)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, [0, 1] units (torchvision)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (0.40760392, 0.45795686, 0.48501961)  # BGR, [0, 1] units; scaled by 255 after subtraction

PREPROCESSING = ("imagenet", "caffe", "signed", "none")  # signed: [0, 1] -> [-1, 1] (the domain network)


class WeightsUnavailable(UserError):
    """Pretrained weights are not on this machine. The message names the file, where it goes and the fix."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _layer_plan() -> list[tuple[str, str]]:
    """The VGG19 feature stack in order, as (kind, name): kind is "conv", "relu" or "pool"."""
    plan: list[tuple[str, str]] = []
    for block, depth in enumerate(VGG19_DEPTHS, start=1):
        for index in range(1, depth + 1):
            plan.append(("conv", f"conv{block}_{index}"))
            plan.append(("relu", f"relu{block}_{index}"))
        plan.append(("pool", f"pool{block}"))
    return plan


LAYER_PLAN: tuple[tuple[str, str], ...] = tuple(_layer_plan())
LAYER_NAMES: tuple[str, ...] = tuple(name for _, name in LAYER_PLAN)
CONV_NAMES: tuple[str, ...] = tuple(name for kind, name in LAYER_PLAN if kind == "conv")
#: position of each convolution in ``torchvision.models.vgg19().features`` (conv1_1 -> 0, conv5_4 -> 34)
TORCHVISION_INDEX: dict[str, int] = {name: i for i, (kind, name) in enumerate(LAYER_PLAN) if kind == "conv"}

_TV_KEY = re.compile(r"^(?:features\.)?(\d+)\.(weight|bias)$")
_CAFFE_KEY = re.compile(r"^(conv\d_\d)\.(weight|bias)$")


def torchvision_checkpoint_path() -> Path:
    """Where torchvision caches the VGG19 weights: ``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def missing_torchvision_weights_message(path: Path) -> str:
    return (
        f"VGG19 weights not found: {path} (torchvision's cache, torch.hub.get_dir()/checkpoints; move it with "
        f'$TORCH_HOME). Fix: on a machine with internet run `python -c "import torchvision; '
        f"torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` and copy {TORCHVISION_VGG19_FILE} there "
        f"(or download {TORCHVISION_VGG19_URL}), or set weights to the path of CoCosNet's vgg19_conv.pth."
    )


def missing_file_message(path: Path) -> str:
    return (
        f"VGG19 weights not found: {path}. Fix: put CoCosNet's vgg19_conv.pth (linked from the Training "
        f"section of https://github.com/microsoft/CoCosNet) at that path, or set weights to 'torchvision'."
    )


def map_state_dict(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Map a VGG19 state dict onto :class:`VGG19Features` keys (``conv1_1.weight`` ...).

    Accepts torchvision's layout (``features.<i>.weight``, classifier entries are dropped; also a bare
    ``features`` Sequential, ``<i>.weight``) and CoCosNet's ``vgg19_conv.pth`` layout (``conv1_1.weight``).
    Returns the mapped dict and the layout name (``"torchvision"`` or ``"caffe"``). Every other tensor is
    an error: a file that is not a VGG19 must not load silently.
    """
    index_to_conv = {i: name for name, i in TORCHVISION_INDEX.items()}
    mapped: dict[str, Tensor] = {}
    layouts: set[str] = set()
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith("classifier."):  # torchvision's fully connected head; not a feature layer
            continue
        if m := _CAFFE_KEY.match(key):
            if m.group(1) not in CONV_NAMES:
                unknown.append(key)
                continue
            mapped[key] = value
            layouts.add("caffe")
        elif (m := _TV_KEY.match(key)) and int(m.group(1)) in index_to_conv:
            mapped[f"{index_to_conv[int(m.group(1))]}.{m.group(2)}"] = value
            layouts.add("torchvision")
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"Not a VGG19 state dict: unexpected entries {unknown[:6]}{'...' if len(unknown) > 6 else ''}.")
    if len(layouts) != 1:
        raise UserError(f"Not a VGG19 state dict: found layouts {sorted(layouts) or 'none'}; expected exactly one.")
    expected = {f"{c}.{p}" for c in CONV_NAMES for p in ("weight", "bias")}
    if missing := sorted(expected - mapped.keys(), key=lambda k: CONV_NAMES.index(k.split(".")[0])):
        raise UserError(f"Incomplete VGG19 state dict: missing {missing[:6]}{'...' if len(missing) > 6 else ''}.")
    return mapped, layouts.pop()


def _widths_from_state(state: Mapping[str, Tensor]) -> tuple[int, ...]:
    """Per-block widths of a mapped state dict, checking that it has VGG19's shape (3×3 convs, chained)."""
    widths: list[int] = []
    in_ch = 3
    for name in CONV_NAMES:
        w = state[f"{name}.weight"]
        if w.dim() != 4 or tuple(w.shape[1:]) != (in_ch, 3, 3) or tuple(state[f"{name}.bias"].shape) != (w.shape[0],):
            raise UserError(f"Not a VGG19 state dict: {name}.weight has shape {tuple(w.shape)} after {in_ch} channels.")
        block = int(name[4]) - 1
        if name.endswith("_1"):
            widths.append(int(w.shape[0]))
        elif w.shape[0] != widths[block]:
            raise UserError(f"Not a VGG19 state dict: {name} has {w.shape[0]} channels, its block {widths[block]}.")
        in_ch = int(w.shape[0])
    return tuple(widths)


class VGG19Features(nn.Module):
    """VGG19 feature maps of images in [0, 1]: ``forward(x) -> {layer name: B×C×h×w}``.

    Args:
        layers: layer names to return (``relu1_2``, ``relu3_2``, ``conv4_2``, ``pool1`` ...). The forward
            pass stops after the deepest one.
        weights: ``"torchvision"`` (torchvision's cached ImageNet VGG19), a path to a VGG19 state dict
            (CoCosNet's Caffe-converted ``vgg19_conv.pth``, or a torchvision-layout file), or ``None`` for a
            random initialisation (tests only: its features mean nothing).
        preprocess: ``"imagenet"``, ``"caffe"``, ``"signed"`` (to [-1, 1], as the domain network of
            :mod:`midms.nn.domain_vgg` is trained) or ``"none"``; by default the one the weights were trained
            with (Caffe for a ``conv1_1.weight``-layout file, ImageNet otherwise).
        widths: per-block channel widths of a random network (``weights=None``), e.g. ``(4, 8, 8, 16, 16)``
            for a tiny test network; default VGG19's ``(64, 128, 256, 512, 512)``.
        requires_grad: train the convolutions (default frozen, as for losses and metrics).

    Attributes:
        weights_id: which weights were loaded, ``<layout>:<source>``, e.g. ``"torchvision:vgg19-dcbb9e9d.pth"``
            (torchvision's cache), ``"caffe:/path/vgg19_conv.pth"``; ``"random"``; ``"module:VGG"``.
        layout: key layout of the loaded state dict (``"torchvision"``, ``"caffe"`` or ``"random"``).
    """

    def __init__(
        self,
        layers: Sequence[str],
        weights: str | Path | Mapping[str, Tensor] | None = "torchvision",
        *,
        preprocess: str | None = None,
        widths: Sequence[int] | None = None,
        requires_grad: bool = False,
    ) -> None:
        super().__init__()
        self.layers = self._check_layers(layers)
        state: dict[str, Tensor] | None = None
        if weights is None:
            self.layout, self.weights_id = "random", "random"
            widths = tuple(widths or VGG19_WIDTHS)
        else:
            if widths is not None:
                raise ValueError("widths is only for random networks (weights=None); a state dict sets its own")
            if isinstance(weights, Mapping):
                state, self.layout = map_state_dict(weights)
                state = {k: v.detach().clone() for k, v in state.items()}  # never share the caller's tensors
                source = "state_dict"
            else:
                path, from_cache = self._resolve(weights)
                state, self.layout = map_state_dict(self._load_file(path))
                source = path.name if from_cache else str(path)
            self.weights_id = f"{self.layout}:{source}"
            widths = _widths_from_state(state)
        self._build(widths, empty=state is not None)
        if state is not None:  # the empty (meta) convolutions take the loaded tensors as they are
            self.convs.load_state_dict({k: v.detach().float() for k, v in state.items()}, strict=True, assign=True)
        self._finish(preprocess, requires_grad)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_module(
        cls,
        net: nn.Module,
        layers: Sequence[str],
        *,
        preprocess: str | None = None,
        requires_grad: bool = False,
    ) -> VGG19Features:
        """Build from an in-memory network with VGG19's layer layout (e.g. ``torchvision.models.vgg19()``,
        its ``.features``, or a module with CoCosNet's ``conv1_1``... naming), copying its weights through
        the same key mapping as a file. Channel widths are read from the weights, so small test networks work.
        """
        self = cls(layers, weights=net.state_dict(), preprocess=preprocess, requires_grad=requires_grad)
        self.weights_id = f"module:{type(net).__name__}"
        return self

    @staticmethod
    def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
        if isinstance(layers, str):
            layers = [layers]
        layers = tuple(layers)
        if not layers:
            raise ValueError("VGG19Features needs at least one layer name")
        if unknown := [name for name in layers if name not in LAYER_NAMES]:
            raise UserError(
                f"Unknown VGG19 layer(s) {unknown}; valid names are conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5."
            )
        return layers

    @staticmethod
    def _resolve(weights: str | Path) -> tuple[Path, bool]:
        """The weights file and whether it is torchvision's cache; checked before anything is read."""
        if str(weights) == "torchvision":
            path = torchvision_checkpoint_path()
            if not path.is_file():
                raise WeightsUnavailable(missing_torchvision_weights_message(path), path)
            return path, True
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(missing_file_message(path), path)
        return path, False

    @staticmethod
    def _load_file(path: Path) -> dict[str, Tensor]:
        source = TORCHVISION_VGG19_URL if path.name == TORCHVISION_VGG19_FILE else ""
        verified_sha256(path, source)
        state = load_checkpoint(path, "VGG19 weights", source)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping):
            raise UserError(f"VGG19 weights {path} hold a {type(state).__name__}, not a state dict.")
        log.info("loaded VGG19 weights from %s", path)
        return dict(state)

    def _build(self, widths: Sequence[int], empty: bool = False) -> None:
        if len(widths) != len(VGG19_DEPTHS):
            raise ValueError(f"widths needs {len(VGG19_DEPTHS)} entries (one per block), got {list(widths)}")
        self.widths = tuple(int(w) for w in widths)
        convs: dict[str, nn.Conv2d] = {}
        in_ch = 3
        # a random network is one fixed function (seed 0, drawn apart from the run's random stream): the same in
        # every run and after a resume; He initialisation keeps each layer's activations at the input's scale
        # (PyTorch's default shrinks them ~3x a layer: relu5_2 would be ~1e-5 and its losses would vanish)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for name in CONV_NAMES:
                out_ch = self.widths[int(name[4]) - 1]
                convs[name] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, device="meta" if empty else None)
                if not empty:
                    nn.init.kaiming_normal_(convs[name].weight, nonlinearity="relu")
                    nn.init.zeros_(convs[name].bias)
                in_ch = out_ch
        self.convs = nn.ModuleDict(convs)
        last = max(LAYER_NAMES.index(name) for name in self.layers)
        self._plan = LAYER_PLAN[: last + 1]

    def _finish(self, preprocess: str | None, requires_grad: bool) -> None:
        if preprocess is None:
            preprocess = "caffe" if self.layout == "caffe" else "imagenet"
        if preprocess not in PREPROCESSING:
            raise UserError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        self.preprocess = preprocess
        if preprocess == "caffe":
            self.register_buffer("shift", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 255.0), persistent=False)
        else:
            mean, std = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "signed": ((0.5,) * 3, (0.5,) * 3)}.get(
                preprocess, ((0.0,) * 3, (1.0,) * 3)
            )
            self.register_buffer("shift", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", 1.0 / torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(requires_grad)
        self.eval()

    # -- forward ------------------------------------------------------------------------------------

    def normalize(self, x: Tensor) -> Tensor:
        """Images in [0, 1] (RGB) -> the network's input space."""
        if self.preprocess == "caffe":
            x = x.flip(1)  # RGB -> BGR
        return (x - self.shift) * self.scale

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``x``: B×3×H×W RGB in [0, 1]. Returns ``{layer: B×C×H/2^k×W/2^k}`` for the requested layers."""
        h = self.normalize(x)
        out: dict[str, Tensor] = {}
        wanted = set(self.layers)
        for kind, name in self._plan:
            if kind == "conv":
                h = self.convs[name](h)
            elif kind == "relu":
                h = F.relu(h)
            else:
                h = F.max_pool2d(h, kernel_size=2, stride=2)
            if name in wanted:
                out[name] = h
        return out

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, weights={self.weights_id}, preprocess={self.preprocess}"
