"""Official checkpoint names and this suite's: every converter's inverse gives back the official name of every
tensor of the full released layouts (so a misfit is named as the user's file names it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from midms.baselines.cocosnet.released import (
    convert_correspondence,
    convert_generator,
    official_correspondence_name,
    official_generator_name,
)
from midms.baselines.spade.released import convert_encoder as spade_encoder
from midms.baselines.spade.released import convert_generator as spade_generator
from midms.baselines.spade.released import official_encoder_name as spade_encoder_name
from midms.baselines.spade.released import official_generator_name as spade_generator_name

from midms.models.midms.released import convert_matching, official_matching_name

SUPPORT = Path(__file__).resolve().parent / "support"
COCOSNET = json.loads((SUPPORT / "cocosnet_released_layouts.json").read_text())
SPADE = json.loads((SUPPORT / "spade_released_layouts.json").read_text())
MIDMS = json.loads((SUPPORT / "midms_released_layout.json").read_text())

CASES = [
    *[(COCOSNET[d]["G"], convert_generator, official_generator_name) for d in ("celebahqedge", "ade20k")],
    *[(COCOSNET[d]["Corr"], convert_correspondence, official_correspondence_name) for d in ("celebahqedge", "ade20k")],
    (SPADE["ade20k"]["G"], spade_generator, spade_generator_name),
    (SPADE["celebahq_vae"]["G"], spade_generator, spade_generator_name),
    (SPADE["celebahq_vae"]["E"], spade_encoder, spade_encoder_name),
    (MIDMS["celebahqedge"], convert_matching, official_matching_name),
]


@pytest.mark.parametrize(("layout", "convert", "official"), CASES)
def test_every_converted_name_maps_back_to_the_official_one(layout, convert, official):
    for name in layout:
        converted = convert({name: torch.zeros(1)})
        assert converted and all(official(ours) == name for ours in converted), (name, list(converted))
