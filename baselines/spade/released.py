"""SPADE's released checkpoints (``latest_net_G.pth``, with ``--use_vae`` also ``latest_net_E.pth``) loaded strictly.

The released models (``checkpoints.tar.gz`` linked from the README of https://github.com/NVlabs/SPADE:
``coco_pretrained``, ``ade20k_pretrained``, ``cityscapes_pretrained``) are ``state_dict`` files of the official
``SPADEGenerator`` (``models/networks/generator.py``) trained without the style encoder; a ``--use_vae`` run of the
official code also writes the ``ConvEncoder`` as ``latest_net_E.pth``. SPADE released no CelebA-HQ edge-to-face
model; ``ade20k_pretrained`` (150 classes + "unknown" = 151 channels) takes the ADE20K label maps of this suite's
LSUN-Churches data with ``model.use_vae=false``.

Their names differ from this suite's modules (:class:`midms.nn.generator.SPADEGenerator`,
:class:`~baselines.spade.encoder.StyleEncoder`) only by renaming: SPADE's MLP ``mlp_shared.0`` (no padding module
before it) is ``shared.1`` here (after the explicit zero padding), its ``param_free_norm`` (a synchronised
BatchNorm, the same running statistics) is ``norm``, the encoder's ``layerN.0`` is ``convs.N-1.0``, and spectral
norm's old hook form (``weight_orig``, ``weight_u``, ``weight_v``) is the parametrization's. A missing, extra or
mis-shaped tensor is an error naming it, never a partial load. The discriminator is not needed to translate.

Checked against the official modules (built from NVlabs/SPADE ``models/networks/`` with the same random weights,
converted here): the ade20k generator's output, and the ``--use_vae`` generator's and encoder's at 256 px, are equal
to the last bit.
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

GENERATOR_FILE, ENCODER_FILE = "latest_net_G.pth", "latest_net_E.pth"
FIX = (
    "Check that the folder holds a SPADE model trained with this dataset's input channels and model.size=paper, and "
    "that model.use_vae matches it (the released models have no encoder: model.use_vae=false)."
)

_GENERATOR = (
    (re.compile(r"^head_0\."), "head."),
    (re.compile(r"^G_middle_(\d+)\."), r"middle.\1."),
    (re.compile(r"^conv_img\."), "to_rgb."),
    (re.compile(r"\.mlp_shared\.0\."), ".shared.1."),
    (re.compile(r"\.param_free_norm\."), ".norm."),
)
_ENCODER = re.compile(r"^layer(\d+)\.")
_GENERATOR_INVERSE = (
    (re.compile(r"^head\."), "head_0."),
    (re.compile(r"^middle\.(\d+)\."), r"G_middle_\1."),
    (re.compile(r"^to_rgb\."), "conv_img."),
    (re.compile(r"\.mlp_shared\.1\."), ".mlp_shared.0."),
    (re.compile(r"\.norm\."), ".param_free_norm."),
)
_OUR_ENCODER = re.compile(r"^convs\.(\d+)\.")


def official_generator_name(name: str) -> str:
    """A :class:`midms.nn.generator.SPADEGenerator` key -> the official name (for error messages)."""
    return rename(rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE), _GENERATOR_INVERSE)


def official_encoder_name(name: str) -> str:
    """A :class:`StyleEncoder` key -> the official ``ConvEncoder`` name (for error messages)."""
    return _OUR_ENCODER.sub(lambda m: f"layer{int(m.group(1)) + 1}.", rename(name, SPADE_AND_SPECTRAL_NORM_INVERSE))


def convert_generator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``SPADEGenerator`` keys -> :class:`midms.nn.generator.SPADEGenerator` keys (values untouched)."""
    return {rename(rename(k, _GENERATOR), SPADE_AND_SPECTRAL_NORM): v for k, v in strip_module(state).items()}


def convert_encoder(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``ConvEncoder`` keys -> :class:`StyleEncoder` keys (values untouched)."""
    out = {}
    for key, value in strip_module(state).items():
        key = _ENCODER.sub(lambda m: f"convs.{int(m.group(1)) - 1}.", key)
        out[rename(key, SPADE_AND_SPECTRAL_NORM)] = value
    return out


def load_released(model: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load the generator (and the encoder, when ``model`` has one) from ``folder``; returns ``{file: SHA-256}``."""
    folder = Path(folder).expanduser()
    parts = [(folder / GENERATOR_FILE, model.generator, convert_generator, official_generator_name)]
    if model.encoder is not None:
        parts.append((folder / ENCODER_FILE, model.encoder, convert_encoder, official_encoder_name))
    absent = [str(path) for path, *_ in parts if not path.is_file()]
    if absent:
        vae = (
            f" With model.use_vae=true the encoder {ENCODER_FILE} is needed too: SPADE's released models have none, "
            f"so load them with model.use_vae=false."
            if model.encoder is not None
            else ""
        )
        raise UserError(
            f"model.pretrained={folder}: missing {', '.join(absent)}. Put a SPADE checkpoint there (the "
            f"checkpoints/<name>_pretrained/ folders of checkpoints.tar.gz, linked from the README of "
            f"https://github.com/NVlabs/SPADE, e.g. ade20k_pretrained).{vae}"
        )
    for path, module, convert, official in parts:
        load_strict(module, convert(tensors_only(read_state(path), path)), str(path), FIX, official)
    return {path.name: file_sha256(path) for path, *_ in parts}
