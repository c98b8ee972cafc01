"""CoCosNet's released checkpoints (``latest_net_Corr.pth``, ``latest_net_G.pth``) loaded into this suite's modules.

The released models (links in the README of https://github.com/microsoft/CoCosNet: ``checkpoints/celebahqedge``,
``checkpoints/ade20k``, ...) are ``state_dict`` files of the official ``NoVGGCorrespondence`` and ``SPADEGenerator``
(``models/networks/correspondence.py``, ``generator.py``), with spectral norm in the old hook form (``weight_orig``,
``weight_u``, ``weight_v``). The same layers exist here under other names
(:class:`~baselines.cocosnet.correspondence.CorrespondenceNet`,
:class:`~baselines.cocosnet.generator.CoCosNetGenerator`) with ``torch.nn.utils.parametrizations.spectral_norm``
(``original``, ``_u``, ``_v``: the same tensors), so a file is converted by renaming (:mod:`midms.nn.official_names`
for the parts shared with MIDMs), then loaded strictly: a missing, extra or mis-shaped tensor is an error naming it,
never a partial load. The discriminator is not needed to translate and is not released.

Layouts: every option that changes a tensor's shape comes from the dataset settings (``adaptor_kernel``,
``maskmix``, the input channels); ``celebahqedge`` (15 input channels, ``--adaptor_kernel 4``), ``ade20k`` (151
channels, kernel 3, ``--maskmix``; the LSUN-Churches recipe) and ``deepfashion`` (20 channels, kernel 4, no
``--maskmix``; ``--warp_patch`` changes no tensor) are tested with their full-size key lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import Tensor, nn

from midms.errors import UserError
from midms.nn.official_names import (
    SPADE_AND_SPECTRAL_NORM,
    SPADE_AND_SPECTRAL_NORM_INVERSE,
    load_strict,
    official_trunk_name,
    read_state,
    rename,
    strip_module,
    tensors_only,
    trunk_names,
)
from midms.weights import file_sha256

#: the released files, by the name of the module they fill
RELEASED_FILES = {"corr": "latest_net_Corr.pth", "generator": "latest_net_G.pth"}
FIX = (
    "Check that the folder holds the released CoCosNet model of this dataset (model.size=paper with the dataset's "
    "settings: adaptor_kernel, input channels)."
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
_ADAPTOR_BLOCK = re.compile(r"^(adaptor_semantics|adaptor_image)\.(layer|head_|G_middle_)(\d+)\.")


def _adaptor_block(match: re.Match) -> str:
    """``layerN.`` (1-based strided convs) -> ``convs.N-1.``; ``head_0`` / ``G_middle_k`` -> ``blocks.0`` / ``k+1``."""
    prefix, kind, index = match.group(1), match.group(2), match.group(3)
    if kind == "layer":
        return f"{prefix}.convs.{int(index) - 1}."
    return f"{prefix}.blocks.{0 if kind == 'head_' else int(index) + 1}."


_GENERATOR_INVERSE = (
    (re.compile(r"^head\."), "head_0."),
    (re.compile(r"^middle\.(\d+)\."), r"G_middle_\1."),
    (re.compile(r"^attention\."), "attn."),
    (re.compile(r"^to_rgb\."), "conv_img."),
)
_OUR_ADAPTOR_BLOCK = re.compile(r"^(adaptor_semantics|adaptor_image)\.(convs|blocks)\.(\d+)\.")
_ADAPTOR_INVERSE = (
    (re.compile(r"^adaptor_semantics\."), "adaptive_model_seg."),
    (re.compile(r"^adaptor_image\."), "adaptive_model_img."),
)


def _official_adaptor_block(match: re.Match) -> str:
    prefix, kind, index = match.group(1), match.group(2), int(match.group(3))
    if kind == "convs":
        return f"{prefix}.layer{index + 1}."
    return f"{prefix}.{'head_0' if index == 0 else f'G_middle_{index - 1}'}."


def official_generator_name(name: str) -> str:
    """A :class:`CoCosNetGenerator` key -> the official ``SPADEGenerator`` name (for error messages)."""
    return rename(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE), _GENERATOR_INVERSE)


def official_correspondence_name(name: str) -> str:
    """A :class:`CorrespondenceNet` key -> the official ``NoVGGCorrespondence`` name (for error messages)."""
    name = official_trunk_name(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE))
    return rename(_OUR_ADAPTOR_BLOCK.sub(_official_adaptor_block, name), _ADAPTOR_INVERSE)


def convert_generator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``SPADEGenerator`` keys -> :class:`CoCosNetGenerator` keys (values untouched)."""
    return {rename(rename(k, _GENERATOR), SPADE_AND_SPECTRAL_NORM): v for k, v in strip_module(state).items()}


def convert_correspondence(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``NoVGGCorrespondence`` keys -> :class:`CorrespondenceNet` keys (values untouched)."""
    out: dict[str, Tensor] = {}
    for key, value in strip_module(state).items():
        for name in trunk_names(key) or [_ADAPTOR_BLOCK.sub(_adaptor_block, rename(key, _ADAPTOR))]:
            out[rename(name, SPADE_AND_SPECTRAL_NORM)] = value
    return out


Converter = tuple[Callable[[Mapping[str, Tensor]], dict[str, Tensor]], Callable[[str], str]]


def load_corr_and_generator(
    corr: nn.Module, generator: nn.Module, folder: str | Path, converters: Mapping[str, Converter], fix: str, where: str
) -> dict[str, str]:
    """``latest_net_Corr.pth`` and ``latest_net_G.pth`` from ``folder``, each converted by ``converters[name]``
    (key converter, official-name function for errors) and loaded strictly; returns ``{file name: SHA-256}``.
    ``where`` says where the files come from (in the error for a missing one), ``fix`` what to check on a misfit."""
    folder = Path(folder).expanduser()
    paths = {name: folder / file for name, file in RELEASED_FILES.items()}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise UserError(f"model.pretrained={folder}: missing {', '.join(absent)}. Put {where} there.")
    for name, module in (("corr", corr), ("generator", generator)):
        convert, official = converters[name]
        path = paths[name]
        load_strict(module, convert(tensors_only(read_state(path), path)), str(path), fix, official)
    return {path.name: file_sha256(path) for path in paths.values()}


def load_released(corr: nn.Module, generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load ``latest_net_Corr.pth`` and ``latest_net_G.pth`` from ``folder``; returns ``{file name: SHA-256}``."""
    where = (
        "the released CoCosNet checkpoint (the checkpoints/<name>/ folder linked from the README of "
        f"https://github.com/microsoft/CoCosNet, e.g. celebahqedge) with {RELEASED_FILES['corr']} and "
        f"{RELEASED_FILES['generator']}"
    )
    converters = {
        "corr": (convert_correspondence, official_correspondence_name),
        "generator": (convert_generator, official_generator_name),
    }
    return load_corr_and_generator(corr, generator, folder, converters, FIX, where)
