"""CoCosNet's released checkpoints (``latest_net_Corr.pth``, ``latest_net_G.pth``) loaded into this suite's modules.

The released models (links in the README of https://github.com/microsoft/CoCosNet: ``checkpoints/celebahqedge``,
``checkpoints/ade20k``, ...) are ``state_dict`` files of the official ``NoVGGCorrespondence`` and
``SPADEGenerator`` (``models/networks/correspondence.py``, ``generator.py``), with spectral norm in the old
hook form (``weight_orig``, ``weight_u``, ``weight_v``). The same layers exist here under other names
(:class:`~baselines.cocosnet.networks.CorrespondenceNet`, :class:`~baselines.cocosnet.networks.SPADEGenerator`)
with ``torch.nn.utils.parametrizations.spectral_norm`` (``original``, ``_u``, ``_v``: the same tensors), so a
file is converted by renaming, then loaded strictly: a missing, extra or mis-shaped tensor is an error naming it,
never a partial load. The discriminator is not needed to translate and is not released.

Layouts: every option that changes a tensor's shape comes from the dataset settings (``adaptor_kernel``, the
input channels); ``celebahqedge`` (15 input channels, ``--adaptor_kernel 4``) and ``ade20k`` (151 channels,
kernel 3; the LSUN-Churches recipe) are tested with their full-size key lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from midms.errors import UserError
from midms.weights import file_sha256

#: the released files, by the name of the module they fill
RELEASED_FILES = {"corr": "latest_net_Corr.pth", "generator": "latest_net_G.pth"}

# renames shared by both networks: SPADE's MLP, the old spectral-norm hook -> parametrizations
_COMMON = (
    (re.compile(r"\.mlp_shared\."), ".shared."),
    (re.compile(r"\.mlp_gamma\."), ".gamma."),
    (re.compile(r"\.mlp_beta\."), ".beta."),
    (re.compile(r"\.weight_orig$"), ".parametrizations.weight.original"),
    (re.compile(r"\.weight_u$"), ".parametrizations.weight.0._u"),
    (re.compile(r"\.weight_v$"), ".parametrizations.weight.0._v"),
)
_GENERATOR = (
    (re.compile(r"^head_0\."), "head."),
    (re.compile(r"^G_middle_(\d+)\."), r"middle.\1."),
    (re.compile(r"^attn\."), "attention."),
    (re.compile(r"^conv_img\."), "to_rgb."),
)
_ADAPTOR = (
    (re.compile(r"^adaptive_model_seg\."), "adaptor_semantics."),
    (re.compile(r"^adaptive_model_img\."), "adaptor_image."),
)


def _adaptor_block(match: re.Match) -> str:
    """``layerN.`` (1-based strided convs) -> ``convs.N-1.``; ``head_0`` / ``G_middle_k`` -> ``blocks.0`` / ``k+1``."""
    prefix, kind, index = match.group(1), match.group(2), match.group(3)
    if kind == "layer":
        return f"{prefix}.convs.{int(index) - 1}."
    return f"{prefix}.blocks.{0 if kind == 'head_' else int(index) + 1}."


_ADAPTOR_BLOCK = re.compile(r"^(adaptor_semantics|adaptor_image)\.(layer|head_|G_middle_)(\d+)\.")
_TRUNK = re.compile(r"^layer\.(\d+)\.(conv1|prelu|conv2)\.")
_TRUNK_PARTS = {"conv1": "body.1", "prelu": "body.3", "conv2": "body.5"}


def _rename(key: str, rules) -> str:
    for pattern, replacement in rules:
        key = pattern.sub(replacement, key)
    return key


def convert_generator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``SPADEGenerator`` keys -> :class:`SPADEGenerator` keys (values untouched)."""
    return {_rename(_rename(k, _GENERATOR), _COMMON): v for k, v in _strip_module(state).items()}


def convert_correspondence(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``NoVGGCorrespondence`` keys -> :class:`CorrespondenceNet` keys (values untouched).

    The trunk's residual blocks share one PReLU between their two activations (``layer.i.prelu``); here it is
    reachable under two names (``trunk.i.body.3`` and ``trunk.i.act``), so it is written to both."""
    out: dict[str, Tensor] = {}
    for key, value in _strip_module(state).items():
        new = _ADAPTOR_BLOCK.sub(_adaptor_block, _rename(key, _ADAPTOR))
        trunk = _TRUNK.match(new)
        if trunk:
            i, part = trunk.group(1), trunk.group(2)
            new = f"trunk.{i}.{_TRUNK_PARTS[part]}.{new[trunk.end() :]}"
            if part == "prelu":
                out[f"trunk.{i}.act.{key.rsplit('.', 1)[1]}"] = value
        out[_rename(new, _COMMON)] = value
    return out


def _strip_module(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a ``module.`` prefix (a state dict saved from a DataParallel wrapper)."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``module.load_state_dict(state, strict=True)``, with shapes checked first and one clear error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing from the file ({', '.join(missing[:6])})")
        if extra:
            parts.append(f"{len(extra)} tensor(s) the model does not have ({', '.join(extra[:6])})")
        if shapes:
            parts.append(f"{len(shapes)} tensor(s) of another shape ({'; '.join(shapes[:4])})")
        raise UserError(
            f"{source} does not fit model=cocosnet with these settings: {'; '.join(parts)}. Names are after "
            f"conversion from the official layout. Check that the file is the released CoCosNet model for this "
            f"dataset (model.size=paper and the dataset's settings: adaptor_kernel, input channels)."
        )
    module.load_state_dict(state, strict=True)


def read_state(path: Path) -> dict[str, Tensor]:
    """A released file, read without unpickling code (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or non-torch file
        raise UserError(f"{path} is not a readable PyTorch state dict ({type(e).__name__}: {e}).") from e
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path} holds {type(state).__name__}, not a state dict of tensors (a released net file).")
    return dict(state)


def load_released(corr: nn.Module, generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load ``latest_net_Corr.pth`` and ``latest_net_G.pth`` from ``folder``; returns ``{file name: SHA-256}``."""
    folder = Path(folder).expanduser()
    paths = {name: folder / file for name, file in RELEASED_FILES.items()}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise UserError(
            f"model.pretrained={folder}: missing {', '.join(absent)}. Put the released CoCosNet checkpoint there "
            f"(the checkpoints/<name>/ folder linked from the README of https://github.com/microsoft/CoCosNet, "
            f"e.g. celebahqedge) with {RELEASED_FILES['corr']} and {RELEASED_FILES['generator']}."
        )
    load_strict(corr, convert_correspondence(read_state(paths["corr"])), str(paths["corr"]))
    load_strict(generator, convert_generator(read_state(paths["generator"])), str(paths["generator"]))
    return {path.name: file_sha256(path) for path in paths.values()}
