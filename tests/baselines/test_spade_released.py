"""SPADE's released checkpoints load strictly into the paper-size model, from full-size official layouts.

``tests/support/spade_released_layouts.json`` lists every tensor name and shape of the official ``SPADEGenerator``
(and, for a ``--use_vae`` run, ``ConvEncoder``) of NVlabs/SPADE: with the ade20k options (the layout of the released
``ade20k_pretrained``) and with ``--use_vae`` on CelebA-HQ's 15 edge channels. The tests write files in those layouts
and load them through the config, as ``model.pretrained=<folder>`` does.
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
from midms.baselines.spade.released import FIX, convert_generator, load_released, official_generator_name

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.nn.official_names import load_strict

CONF = Path(__file__).resolve().parents[2] / "conf"
LAYOUTS = json.loads((Path(__file__).resolve().parents[1] / "support" / "spade_released_layouts.json").read_text())
# the official layout, the dataset whose channels it fits, and whether it has the style encoder
CASES = {"ade20k": ("ade20k", 151, False), "celebahq_vae": ("celebahq", 15, True)}  # dataset=ade20k: as reproduced
FILES = {"G": "latest_net_G.pth", "E": "latest_net_E.pth"}

# where some official tensors land
LANDS_AT = {
    "G": {
        "head_0.norm_0.mlp_shared.0.weight": "head.norm_0.shared.1.weight",
        "G_middle_1.norm_1.param_free_norm.running_var": "middle.1.norm_1.norm.running_var",
        "up_3.conv_s.weight_orig": "up_3.conv_s.parametrizations.weight.original",
        "up_0.norm_s.mlp_beta.bias": "up_0.norm_s.beta.bias",
        "conv_img.weight": "to_rgb.weight",
        "fc.weight": "fc.weight",
    },
    "E": {
        "layer1.0.weight_orig": "convs.0.0.parametrizations.weight.original",
        "layer6.0.weight_v": "convs.5.0.parametrizations.weight.0._v",
        "fc_var.bias": "fc_var.bias",
    },
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", "model=spade", *overrides])


def official_state(layout: str, net: str) -> dict[str, torch.Tensor]:
    """A full-size state dict in the official layout; each tensor filled with its own index (traceable)."""
    return {name: torch.full(shape, float(i)) for i, (name, shape) in enumerate(LAYOUTS[layout][net].items())}


def _model(dataset: str, channels: int, *overrides: str):
    cfg = _compose(f"dataset={dataset}", "model.size=paper", "train=false", *overrides)
    cfg.model.module.vgg_weights, cfg.model.module.vgg_widths = "random", [4, 8, 8, 16, 16]  # losses unused here
    logging.disable(logging.WARNING)
    try:
        spec = DataSpec(semantic_nc=channels, image_size=256, num_classes=channels, has_target=False)
        return hydra.utils.instantiate(cfg.model.module, data_spec=spec)
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture(
    scope="module",
    params=[
        "ade20k",  # the released layout
        pytest.param("celebahq_vae", marks=pytest.mark.slow),  # a --use_vae run of the official code (no release)
    ],
)
def released(request, tmp_path_factory):
    """(layout, folder, model loaded through the config with model.pretrained=folder)."""
    layout = request.param
    dataset, channels, vae = CASES[layout]
    folder = tmp_path_factory.mktemp(layout)
    for net in LAYOUTS[layout]:
        torch.save(official_state(layout, net), folder / FILES[net])
    model = _model(dataset, channels, f"model.pretrained={folder}", f"model.use_vae={str(vae).lower()}")
    return layout, folder, model


def test_every_official_tensor_is_loaded_where_it_belongs(released):
    layout, folder, model = released
    for net, module in (("G", model.generator), ("E", model.encoder)):
        if net not in LAYOUTS[layout]:
            assert module is None
            continue
        own = module.state_dict()
        names = list(LAYOUTS[layout][net])
        filled = {float(v.flatten()[0]) for v in own.values() if v.numel()}
        assert filled == {float(i) for i in range(len(names))}, net  # every file tensor is somewhere, nothing else
        for official, ours in LANDS_AT[net].items():
            assert torch.all(own[ours] == names.index(official)), (official, ours)
    expected = {"folder": str(folder)}
    for net in LAYOUTS[layout]:
        path = folder / FILES[net]
        expected[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.protocol["pretrained"] == expected


@pytest.mark.parametrize(
    ("fault", "name", "ours"),
    [
        ("missing", "up_1.norm_0.param_free_norm.running_mean", "up_1.norm_0.norm.running_mean"),
        ("shape", "up_1.norm_0.param_free_norm.running_mean", "up_1.norm_0.norm.running_mean"),
        ("missing", "up_0.norm_1.mlp_gamma.bias", "up_0.norm_1.gamma.bias"),
    ],
)
def test_a_corrupted_release_is_an_error_naming_the_tensor(released, fault, name, ours):
    layout, _, model = released
    state = official_state(layout, "G")
    if fault == "missing":
        del state[name]
    else:
        state[name] = torch.zeros(7)
    with pytest.raises(UserError) as info:
        load_strict(model.generator, convert_generator(state), "latest_net_G.pth", FIX, official_generator_name)
    message = str(info.value)
    assert {"missing": "missing from the file", "shape": "another shape"}[fault] in message
    assert f"{name} (here {ours})" in message and "model.use_vae" in message  # as the file names it, and as we do


def test_the_released_layouts_do_not_cross(released):
    """The ade20k generator (a convolution of 151 channels at the start) does not load into a VAE model, and back."""
    layout, _, model = released
    other = next(name for name in CASES if name != layout)
    with pytest.raises(UserError, match="fc.weight"):
        load_strict(model.generator, convert_generator(official_state(other, "G")), "latest_net_G.pth", FIX)


def test_a_missing_encoder_names_the_file_and_the_released_layout(tmp_path):
    torch.save(official_state("ade20k", "G"), tmp_path / "latest_net_G.pth")
    cfg = _compose("dataset=celebahq", "~preset", "model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]")
    model = hydra.utils.instantiate(cfg.model.module, data_spec=DataSpec(15, 64, 19, False))  # with the encoder
    with pytest.raises(UserError, match="missing .*latest_net_E.pth.*model.use_vae=false") as info:
        load_released(model, tmp_path)
    assert "NVlabs/SPADE" in str(info.value) and "latest_net_G.pth," not in str(info.value)


def test_the_released_ade20k_model_reads_the_unknown_class_last(released):
    """SPADE's data/ade20k_dataset.py: ``label - 1`` and -1 -> label_nc, so one-hot channel k is ADE20K class k + 1
    and the last channel (150) the unknown class 0; this suite's labels put unknown first."""
    layout, _, model = released
    if layout != "ade20k":
        assert not model.unknown_label_last  # 15 edge channels: nothing to move
        return
    assert model.unknown_label_last and model.protocol["unknown_label_last"] is True
    labels = torch.tensor([[0, 1], [150, 7]])  # ADE20K ids: unknown, wall, flag, bed
    onehot = torch.nn.functional.one_hot(labels, 151).permute(2, 0, 1)[None].float()
    released_order = model.model_semantics(onehot)
    for ade_id, channel in ((0, 150), (1, 0), (150, 149), (7, 6)):
        assert released_order[0, channel][labels == ade_id].all(), (ade_id, channel)
    seen = {}
    forward = model.generator.forward

    def spy(x, *args):
        seen["x"] = x
        return forward(x, *args)

    model.generator.forward = spy
    try:
        with torch.no_grad():
            model.generate(onehot.repeat(1, 1, 128, 128), None)
    finally:
        del model.generator.forward
    assert torch.equal(seen["x"][:, :, :2, :2], released_order)  # what the generator reads
    own = _model("lsun_church", 151, "model.unknown_label_last=auto")  # trained here: the suite's order
    assert not own.unknown_label_last
