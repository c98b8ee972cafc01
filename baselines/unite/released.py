"""UNITE's released model (``latest_net_Corr.pth``, ``latest_net_G.pth``) loaded into this suite's modules.

The README of https://github.com/fnzhan/UNITE links one archive of pretrained models (ADE20K), saved by the user in
``checkpoints/<name>/``. The repository has no licence file, so nothing of it ships here: ``model.pretrained`` points
at the user's own download. The files are ``state_dict`` s of the official ``NoVGGCorrespondence`` and
``SEACEGenerator`` saved by ``util.save_network``, with spectral norm in the old hook form. The official loader falls
back to a non-strict load when a key misfits (``util.load_network``); here the load is strict: a missing, extra or
mis-shaped tensor is an error naming it.

Module names are the official ones (:mod:`.correspondence`, :mod:`.generator`), so the renames are the spectral-norm
tensors, SPADE's MLP in the adaptors and the residual trunk (``layer.i`` -> ``trunk.i``), shared with CoCosNet
(:mod:`midms.nn.official_names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from midms.baselines.cocosnet.released import load_corr_and_generator
from torch import Tensor, nn

from midms.nn.official_names import (
    SPADE_AND_SPECTRAL_NORM,
    SPADE_AND_SPECTRAL_NORM_INVERSE,
    official_trunk_name,
    rename,
    strip_module,
    trunk_names,
)

FIX = (
    "Check that the folder holds the released UNITE ADE20K model and that the run uses its settings "
    "(model.size=paper with the ADE20K recipe: 151 input channels, maskmix, use_coordconv, adaptor_nonlocal)."
)


def convert(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``NoVGGCorrespondence`` / ``SEACEGenerator`` keys -> this suite's (values untouched)."""
    out: dict[str, Tensor] = {}
    for key, value in strip_module(state).items():
        for name in trunk_names(key) or [key]:
            out[rename(name, SPADE_AND_SPECTRAL_NORM)] = value
    return out


def official_name(name: str) -> str:
    """One of this suite's keys -> the official name (for error messages)."""
    return official_trunk_name(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE))


def load_released(corr: nn.Module, generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load ``latest_net_Corr.pth`` and ``latest_net_G.pth`` from ``folder``; returns ``{file name: SHA-256}``."""
    where = (
        "your download of the released UNITE model (the pretrained-models link in the README of "
        "https://github.com/fnzhan/UNITE, unpacked as checkpoints/ade20k/)"
    )
    converters = {"corr": (convert, official_name), "generator": (convert, official_name)}
    return load_corr_and_generator(corr, generator, folder, converters, FIX, where)
