"""CoCosNet's released checkpoints load strictly into the paper-size model, from full-size official layouts.

``tests/support/cocosnet_released_layouts.json`` lists every tensor name and shape of the official
``NoVGGCorrespondence`` and ``SPADEGenerator`` built with the README's celebahqedge and ade20k options (facts read
from microsoft/CoCosNet's module definitions). The tests write files in that layout and load them through the
config, as ``model.pretrained=<folder>`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from midms.baselines.cocosnet.released import (
    FIX,
    convert_correspondence,
    convert_generator,
    load_strict,
    official_generator_name,
)

from midms.data.contract import DataSpec
from midms.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "conf"
LAYOUTS = json.loads((Path(__file__).resolve().parents[1] / "support" / "cocosnet_released_layouts.json").read_text())
# the official option set of each layout and the dataset whose settings give the same tensors
CASES = {"celebahqedge": ("celebahq", 15), "ade20k": ("ade20k", 151), "deepfashion": ("deepfashion", 20)}

# where some official tensors land: the correspondence checked numerically against the official networks (the same
# random weights in both, converted: warp and output identical to the last bit at 256 px)
LANDS_AT = {
    "G": {
        "G_middle_1.conv_0.weight_orig": ["middle.1.conv_0.parametrizations.weight.original"],
        "head_0.norm_0.mlp_gamma.weight": ["head.norm_0.gamma.weight"],
        "attn.gamma": ["attention.gamma"],
        "conv_img.weight": ["to_rgb.weight"],
        "up_3.conv_s.weight_u": ["up_3.conv_s.parametrizations.weight.0._u"],
    },
    "Corr": {
        "adaptive_model_img.layer5.0.weight_orig": ["adaptor_image.convs.4.0.parametrizations.weight.original"],
        "adaptive_model_seg.G_middle_1.norm_s.mlp_beta.weight": ["adaptor_semantics.blocks.2.norm_s.beta.weight"],
        "layer.3.prelu.weight": ["trunk.3.body.3.weight", "trunk.3.act.weight"],  # one PReLU, both activations
        "layer.0.conv2.weight": ["trunk.0.body.5.weight"],
        "phi.weight": ["phi.weight"],
    },
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])


def official_state(layout: str, net: str) -> dict[str, torch.Tensor]:
    """A full-size state dict in the official layout; each tensor filled with its own index (traceable)."""
    shapes = LAYOUTS[layout][net]
    return {name: torch.full(shape, float(i)) for i, (name, shape) in enumerate(shapes.items())}


def write_release(folder: Path, layout: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(official_state(layout, "Corr"), folder / "latest_net_Corr.pth")
    torch.save(official_state(layout, "G"), folder / "latest_net_G.pth")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=list(CASES))
def released(request, tmp_path_factory):
    """(layout, folder, model loaded through the config with model.pretrained=folder)."""
    layout = request.param
    dataset, channels = CASES[layout]
    folder = tmp_path_factory.mktemp(layout)
    write_release(folder, layout)
    cfg = _compose(f"dataset={dataset}", "model=cocosnet", f"model.pretrained={folder}", "train=false")
    cfg.model.module.vgg_weights, cfg.model.module.vgg_widths = "random", [4, 8, 8, 16, 16]  # losses unused here
    logging.disable(logging.WARNING)
    try:
        spec = DataSpec(semantic_nc=channels, image_size=256, num_classes=channels, has_target=False)
        model = hydra.utils.instantiate(cfg.model.module, data_spec=spec)
    finally:
        logging.disable(logging.NOTSET)
    return layout, folder, model


def test_every_official_tensor_is_loaded_where_it_belongs(released):
    layout, folder, model = released
    for net, module in (("Corr", model.corr), ("G", model.generator)):
        own = module.state_dict()
        names = list(LAYOUTS[layout][net])
        filled = {float(v.flatten()[0]) for v in own.values() if v.numel()}
        assert filled == {float(i) for i in range(len(names))}, net  # every file tensor is somewhere, nothing else
        for official, ours in LANDS_AT[net].items():
            for name in ours:
                assert torch.all(own[name] == names.index(official)), (official, name)
    assert model.protocol["pretrained"] == {
        "folder": str(folder),
        "latest_net_Corr.pth": sha256(folder / "latest_net_Corr.pth"),
        "latest_net_G.pth": sha256(folder / "latest_net_G.pth"),
    }


@pytest.mark.parametrize("fault", ["missing", "extra", "shape"])
def test_a_corrupted_release_is_an_error_naming_the_tensor(released, fault):
    layout, _, model = released
    state = official_state(layout, "G")
    name = "up_2.conv_1.weight_orig"
    if fault == "missing":
        del state[name]
    elif fault == "extra":
        state["up_2.conv_9.weight"] = torch.zeros(3)
    else:
        state[name] = torch.zeros(7, 7)
    with pytest.raises(UserError) as info:
        load_strict(model.generator, convert_generator(state), "latest_net_G.pth", FIX, official_generator_name)
    message = str(info.value)
    wanted = {"missing": "missing from the file", "extra": "does not have", "shape": "another shape"}[fault]
    assert wanted in message and "up_2.conv_" in message and "latest_net_G.pth" in message
    if fault != "extra":  # as the file names it, and as this suite does
        assert f"{name} (here up_2.conv_1.parametrizations.weight.original)" in message
    if fault == "shape":
        assert "(7, 7)" in message


def test_a_release_of_another_dataset_does_not_load(released):
    layout, _, model = released
    other = next(name for name in LAYOUTS if name not in (layout, "_source"))
    with pytest.raises(UserError, match="another shape"):
        load_strict(model.corr, convert_correspondence(official_state(other, "Corr")), "latest_net_Corr.pth", FIX)


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    cfg = _compose("dataset=celebahq", "model=cocosnet", f"model.pretrained={tmp_path}", "model.size=tiny")
    spec = DataSpec(semantic_nc=15, image_size=64, num_classes=19, has_target=False)
    with pytest.raises(Exception, match="latest_net_Corr.pth") as info:
        hydra.utils.instantiate(cfg.model.module, data_spec=spec)
    assert "microsoft/CoCosNet" in str(info.value)
    (tmp_path / "latest_net_Corr.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "latest_net_G.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="is not a PyTorch checkpoint"):
        hydra.utils.instantiate(cfg.model.module, data_spec=spec)
