"""DynaST's released generator (``latest_net_G.pth``) loaded into :class:`~baselines.dynast.network.DynaSTGenerator`.

The released model (the DeepFashion checkpoint linked from the README of https://github.com/Huage001/DynaST, put in
``checkpoints/deepfashion/``) is the ``state_dict`` of the official ``DynaSTGenerator`` saved by
``util.save_network`` as ``latest_net_G.pth``; the discriminator is not needed to translate and is not released. The
official code falls back to a non-strict load when a key misfits (``util.load_network``); here the load is strict:
a missing, extra or mis-shaped tensor is an error naming it.

The top-level names are the official ones. Inside the blocks the renames are:

- SPADE: ``mlp_shared.0`` (the conv; the padding is its ``padding_mode``) -> ``shared.1`` (after an explicit pad),
  ``mlp_gamma`` / ``mlp_beta`` -> ``gamma`` / ``beta``;
- residual blocks: ``model.{0,1,2,3,4}`` (conv, BatchNorm, PReLU, conv, BatchNorm) -> ``body.{1,2,3,5,6}`` (the pads at
  0 and 4), ``relu`` -> ``act`` (the same PReLU: the file holds it twice, as ``model.2`` and ``relu``, and so does the
  module); the SPADE residual blocks' ``relu`` -> ``act``;
- spectral norm's old hook (``weight_orig``, ``weight_u``, ``weight_v``) -> the parametrisation's tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from midms.errors import UserError
from midms.nn.official_names import (
    SPADE_AND_SPECTRAL_NORM,
    SPADE_AND_SPECTRAL_NORM_INVERSE,
    load_strict,
    read_state,
    rename,
    strip_module,
    tensors_only,
)
from midms.weights import file_sha256

RELEASED_FILE = "latest_net_G.pth"
FIX = (
    "Check that the folder holds the released DynaST DeepFashion model and that the run uses its settings "
    "(model.size=paper: ngf 64, max_multi 8, n_layers 2, pos_dim and prune_dim 16; a 256-pixel image, which sizes "
    "the positional embedding; the 20 pose channels)."
)

#: residual-block layer index: official ``model.K`` -> ours ``body.M``
_BODY = {"0": "1", "1": "2", "2": "3", "3": "5", "4": "6"}
_BODY_INVERSE = {v: k for k, v in _BODY.items()}
_TO_OURS = (
    (re.compile(r"\.mlp_shared\.0\."), ".shared.1."),
    (re.compile(r"\.model\.([0-4])\."), None),
    (re.compile(r"(^|\.)relu\.weight$"), r"\1act.weight"),
)
_TO_OFFICIAL = (
    (re.compile(r"\.shared\.1\."), ".mlp_shared.0."),
    (re.compile(r"\.body\.([1235-6])\."), None),
    (re.compile(r"(^|\.)act\.weight$"), r"\1relu.weight"),
)


def _apply(name: str, rules, table: dict[str, str], word: str) -> str:
    for pattern, replacement in rules:
        if replacement is None:
            name = pattern.sub(lambda m: f".{word}.{table[m.group(1)]}.", name)
        else:
            name = pattern.sub(replacement, name)
    return name


def convert_generator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``DynaSTGenerator`` keys -> :class:`DynaSTGenerator` keys (values untouched)."""
    return {
        rename(_apply(k, _TO_OURS, _BODY, "body"), SPADE_AND_SPECTRAL_NORM): v for k, v in strip_module(state).items()
    }


def official_generator_name(name: str) -> str:
    """A :class:`DynaSTGenerator` key -> the official name (for error messages)."""
    return _apply(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE), _TO_OFFICIAL, _BODY_INVERSE, "model")


def load_generator_file(generator: nn.Module, folder: str | Path, fix: str, where: str) -> dict[str, str]:
    """Load ``<folder>/latest_net_G.pth`` strictly through DynaST's renames; ``where`` says where the file comes from
    (in the error for a missing file), ``fix`` what to check on a misfit. Returns ``{file name: SHA-256}``."""
    path = Path(folder).expanduser() / RELEASED_FILE
    if not path.is_file():
        raise UserError(f"model.pretrained={folder}: missing {path}. Put {where} there.")
    state = convert_generator(tensors_only(read_state(path), path))
    load_strict(generator, state, str(path), fix, official_generator_name)
    return {path.name: file_sha256(path)}


def load_released(generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load the released DynaST generator from ``folder`` strictly; returns ``{file name: SHA-256}``."""
    where = (
        "the released DynaST checkpoint (the DeepFashion model linked from the README of "
        f"https://github.com/Huage001/DynaST, saved as checkpoints/deepfashion/{RELEASED_FILE})"
    )
    return load_generator_file(generator, folder, FIX, where)
