"""CoCosNet v2's released DeepFashion-HD model (``latest_net_Corr.pth``, ``latest_net_G.pth``) loaded strictly.

The released model (the checkpoint linked from the README of https://github.com/microsoft/CoCosNet-v2, MIT licence,
put below ``checkpoints/deepfashionHD``) holds the ``state_dict`` of the official ``NoVGGHPMCorrespondence`` and
``SPADEGenerator``. The correspondence keeps its official names except inside the blocks (residual ``model`` ->
``body``, ``relu`` -> ``act``; SPADE's ``mlp_*``; the old spectral-norm hook); the generator's are CoCosNet's renames
(``head_0`` -> ``head``, ``G_middle_i`` -> ``middle.i``, ``conv_img`` -> ``to_rgb``) under ``trunk.``. A missing,
extra or mis-shaped tensor is an error naming it; the official loader falls back to a non-strict load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from midms.baselines.cocosnet.released import convert_generator as convert_cocosnet_generator
from midms.baselines.cocosnet.released import load_corr_and_generator
from midms.baselines.cocosnet.released import official_generator_name as official_cocosnet_generator_name
from torch import Tensor, nn

from midms.nn.official_names import (
    SPADE_AND_SPECTRAL_NORM,
    SPADE_AND_SPECTRAL_NORM_INVERSE,
    rename,
    strip_module,
)

FIX = (
    "Check that the folder holds CoCosNet v2's released DeepFashion-HD model and that the run uses its settings "
    "(model.size=paper: nef 32, ngf 64; the 20 pose channels)."
)
_CORR = ((re.compile(r"\.model\.(\d)\."), r".body.\1."), (re.compile(r"\.relu\.weight$"), ".act.weight"))
_CORR_INVERSE = ((re.compile(r"\.body\.(\d)\."), r".model.\1."), (re.compile(r"\.act\.weight$"), ".relu.weight"))


def convert_correspondence(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {rename(rename(k, _CORR), SPADE_AND_SPECTRAL_NORM): v for k, v in strip_module(state).items()}


def official_correspondence_name(name: str) -> str:
    return rename(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE), _CORR_INVERSE)


def convert_generator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {f"trunk.{k}": v for k, v in convert_cocosnet_generator(state).items()}


def official_generator_name(name: str) -> str:
    return official_cocosnet_generator_name(name.removeprefix("trunk."))


def load_released(corr: nn.Module, generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load both files from ``folder`` strictly; returns ``{file name: SHA-256}``."""
    where = (
        "CoCosNet v2's released DeepFashion-HD checkpoint (linked from the README of "
        "https://github.com/microsoft/CoCosNet-v2)"
    )
    converters = {
        "corr": (convert_correspondence, official_correspondence_name),
        "generator": (convert_generator, official_generator_name),
    }
    return load_corr_and_generator(corr, generator, folder, converters, FIX, where)
