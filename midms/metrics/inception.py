"""clean-fid's Inception networks, loaded from local files only: where each mode's weights file lives, and the
feature extractor built from it.

clean-fid (Parmar, Zhang and Zhu, CVPR 2022; https://github.com/GaParmar/clean-fid) would download a missing
file, and can hang doing so offline. Here the file each mode needs is looked up first (an explicit path, the
cache's ``weights/`` folder, then where clean-fid or ``torch.hub`` keeps it); an absent file makes the metric
skip with the file, the folder and the fix, a file whose published SHA-256 differs is an error
(:mod:`midms.weights`). Random weights are never used.
"""

from __future__ import annotations

import importlib.metadata
import platform
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from midms.errors import MetricSkipped, UserError
from midms.weights import load_checkpoint, verified_sha256

#: Modes of clean-fid (``cleanfid.resize.build_resizer`` / ``cleanfid.features.build_feature_extractor``).
MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")

#: A feature extractor as clean-fid calls it: float32 B×3×H×W images with values in [0, 255] (already
#: resized by the mode; H = W = 299 except in ``legacy_tensorflow``, where the network resizes) -> B×D.
FeatureFn = Callable[[Tensor], Tensor]

#: Where clean-fid keeps the torchscript Inception (``cleanfid.features.feature_extractor``: "./" on
#: Windows, "/tmp" elsewhere). Module-level so that tests can point it at an empty folder.
CLEANFID_INCEPTION_DIR = Path("./" if platform.system() == "Windows" else "/tmp")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UserError(f"FID mode {mode!r} is not one of {', '.join(MODES)} (clean-fid's modes).")


@lru_cache(maxsize=1)
def cleanfid_version() -> str:
    try:
        return importlib.metadata.version("clean-fid")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class WeightsSpec:
    """The Inception weights file a mode needs, and where clean-fid would download it from and to."""

    file_name: str
    url: str
    source: str  # who defines the file (for messages)

    def default_dir(self) -> Path:
        """The folder clean-fid looks in (and downloads to) for this file."""
        if self.file_name.endswith(".pt"):
            return CLEANFID_INCEPTION_DIR
        # cleanfid.inception_pytorch.fid_inception_v3 -> torch.hub's load_state_dict_from_url
        return Path(torch.hub.get_dir()) / "checkpoints"


_TORCHSCRIPT = WeightsSpec(
    file_name="inception-2015-12-05.pt",  # cleanfid.downloads_helper.check_download_inception
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    source="clean-fid's torchscript Inception (StyleGAN2-ADA port of the TF FID graph)",
)
_PYTORCH_FID = WeightsSpec(
    file_name="pt_inception-2015-12-05-6726825d.pth",  # cleanfid.inception_pytorch.FID_WEIGHTS_URL
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    source="pytorch-fid's Inception weights",
)


def weights_spec(mode: str) -> WeightsSpec:
    """The weights file clean-fid uses in ``mode``."""
    check_mode(mode)
    return _PYTORCH_FID if mode == "legacy_pytorch" else _TORCHSCRIPT


def resolve_weights(
    mode: str,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    option: str = "metrics.fid.weights",
) -> Path:
    """Find the Inception weights file of ``mode`` on disk, without touching the network.

    Looks at ``weights`` when given (and only there), else at ``<cache_dir>/weights/<file>`` and at the
    path clean-fid itself uses. Raises :class:`MetricSkipped` naming the file, the folder and the fix.
    """
    spec = weights_spec(mode)
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise MetricSkipped(
            f"{option}={path} does not exist (mode={mode} needs {spec.source}, {spec.file_name}). "
            f"Fix: download {spec.url} to {path}, or correct {option}."
        )
    default = spec.default_dir() / spec.file_name
    candidates = ([Path(cache_dir) / "weights" / spec.file_name] if cache_dir is not None else []) + [default]
    for path in candidates:
        if path.is_file():
            return path
    raise MetricSkipped(
        f"Inception weights file {spec.file_name} ({spec.source}, needed by mode={mode}) is missing: not in "
        f"{spec.default_dir()} (where clean-fid looks for it)"
        + (f" nor in {candidates[0].parent}" if len(candidates) > 1 else "")
        + f". Fix: download {spec.url} to {default}, or set {option}=/path/to/{spec.file_name}."
    )


# clean-fid's pytorch-fid port fetches its state dict through load_state_dict_from_url, with no argument for a
# local file: the function is swapped for the duration of the constructor, under a lock
_SWAP_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_inception(mode: str, path: str, device: str) -> FeatureFn:
    """Build clean-fid's feature extractor of ``mode`` from a local file (mirrors ``cleanfid.features``)."""
    from cleanfid import inception_pytorch
    from cleanfid.inception_torchscript import InceptionV3W

    dev = torch.device(device)
    file = Path(path)
    if mode == "legacy_pytorch":
        state = load_checkpoint(file, "pytorch-fid's Inception weights")
        with _SWAP_LOCK:
            original = inception_pytorch.load_state_dict_from_url
            inception_pytorch.load_state_dict_from_url = lambda *args, **kwargs: state
            try:
                model = inception_pytorch.InceptionV3(output_blocks=[3], resize_input=False)
            finally:
                inception_pytorch.load_state_dict_from_url = original
        model = model.to(dev).eval()

        def pytorch_fn(x: Tensor) -> Tensor:  # as cleanfid.features.feature_extractor("pytorch_inception")
            return model(x / 255)[0].squeeze(-1).squeeze(-1)

        return pytorch_fn

    resize_inside = mode == "legacy_tensorflow"
    if file.name == _TORCHSCRIPT.file_name:
        net = InceptionV3W(str(file.parent), download=False, resize_inside=resize_inside)
    else:  # InceptionV3W reads <folder>/inception-2015-12-05.pt: show it the file under that name
        with tempfile.TemporaryDirectory(prefix="midms-inception-") as folder:
            (Path(folder) / _TORCHSCRIPT.file_name).symlink_to(file)
            net = InceptionV3W(folder, download=False, resize_inside=resize_inside)
    net = net.to(dev).eval()

    def torchscript_fn(x: Tensor) -> Tensor:
        return net(x)

    return torchscript_fn


def inception_extractor(
    mode: str,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    option: str = "metrics.fid.weights",
) -> tuple[FeatureFn, str, Path]:
    """clean-fid's Inception of ``mode`` from a local file: ``(extractor, extractor id, weights path)``.

    Raises :class:`MetricSkipped` when the file is absent or cannot be loaded; never downloads.
    """
    path = resolve_weights(mode, weights, cache_dir, option)
    sha256 = verified_sha256(path, weights_spec(mode).url)  # a wrong file is an error, never a skip
    try:
        fn = _load_inception(mode, str(path.resolve()), str(torch.device(device)))
    except Exception as e:  # a truncated download, a file of the other mode, ...
        spec = weights_spec(mode)
        raise MetricSkipped(
            f"could not load the Inception weights {path} for mode={mode} ({type(e).__name__}: {e}). "
            f"Fix: delete it and download {spec.url} again, or set {option} to a valid "
            f"{spec.file_name}."
        ) from e
    return fn, f"inception:{path.name}:sha256:{sha256}", path
