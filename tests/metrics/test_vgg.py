"""The shared VGG19 extractor: layer naming, both weight layouts, and the missing-weights error (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from midms.errors import MetricSkipped, UserError
from midms.metrics.base import EvalContext
from midms.metrics.semantic import SemanticConsistency
from midms.nn import vgg
from midms.nn.vgg import VGG19Features, WeightsUnavailable

TINY = (4, 8, 8, 16, 16)
RELUS = [name for name in vgg.LAYER_NAMES if name.startswith("relu")]


@pytest.fixture(scope="module")
def tv_vgg19() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).eval()


def tiny_torchvision_features() -> torch.nn.Sequential:
    """torchvision's VGG19 ``features`` layout (same indices) with tiny widths."""
    cfg: list = []
    for width, depth in zip(TINY, vgg.VGG19_DEPTHS, strict=True):
        cfg += [width] * depth + ["M"]
    return torchvision.models.vgg.make_layers(cfg)


# VGG19's 16 convolutions (Simonyan & Zisserman, configuration E: 2, 2, 4, 4, 4 per block), named as in
# CoCosNet's vgg19_conv.pth (models/networks/correspondence.py, VGG19_feature_color_torchversion)
CONV_NAMES = tuple(
    f"conv{block}_{i}" for block, depth in enumerate((2, 2, 4, 4, 4), start=1) for i in range(1, depth + 1)
)


def caffe_state(widths=TINY) -> dict[str, torch.Tensor]:
    """A state dict in the layout of CoCosNet's vgg19_conv.pth (``conv1_1.weight`` ...), random values."""
    gen = torch.Generator().manual_seed(1)
    state, in_ch = {}, 3
    for name in CONV_NAMES:
        out_ch = widths[int(name[4]) - 1]
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=gen) * 0.1
        state[f"{name}.bias"] = torch.randn(out_ch, generator=gen) * 0.1
        in_ch = out_ch
    return state


def test_layer_names_and_shapes_match_torchvision(tv_vgg19: torch.nn.Module) -> None:
    net = VGG19Features.from_module(tv_vgg19, RELUS + ["pool5"])
    x = torch.rand(1, 3, 32, 32)
    out = net(x)
    assert list(out) == RELUS + ["pool5"]
    widths = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
    for name in RELUS:
        block = int(name[4])
        assert out[name].shape == (1, widths[str(block)], 32 >> (block - 1), 32 >> (block - 1)), name
    assert out["pool5"].shape == (1, 512, 1, 1)
    assert net.weights_id == "module:VGG" and net.layout == "torchvision" and net.preprocess == "imagenet"
    # the same numbers as torchvision's own network on ImageNet-normalised input
    with torch.no_grad():
        normalised = torchvision.transforms.functional.normalize(x, vgg.IMAGENET_MEAN, vgg.IMAGENET_STD)
        ref_relu3_2 = tv_vgg19.features[:14](normalised)
        ref = tv_vgg19.features[14:36](ref_relu3_2)
    torch.testing.assert_close(out["relu5_4"], ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["relu3_2"], ref_relu3_2, rtol=1e-4, atol=1e-5)


def test_torchvision_weights_load_from_hub_cache(hub_dir: Path, trust_weights) -> None:
    features = tiny_torchvision_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the real file has the head too; it is dropped
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(state, hub_dir / "checkpoints" / vgg.TORCHVISION_VGG19_FILE)
    trust_weights(hub_dir / "checkpoints" / vgg.TORCHVISION_VGG19_FILE)

    net = VGG19Features(["relu2_2", "relu4_1"], weights="torchvision")
    assert net.weights_id == "torchvision:vgg19-dcbb9e9d.pth"
    assert net.widths == TINY and net.preprocess == "imagenet"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        normalised = torchvision.transforms.functional.normalize(x, vgg.IMAGENET_MEAN, vgg.IMAGENET_STD)
        ref = features[:9](normalised)
    torch.testing.assert_close(net(x)["relu2_2"], ref)
    assert net(x)["relu4_1"].shape == (1, 16, 4, 4)


def test_caffe_layout_maps_every_tensor(tmp_path: Path) -> None:
    state = caffe_state()
    path = tmp_path / "vgg19_conv.pth"
    torch.save(state, path)
    net = VGG19Features(["relu1_1", "relu5_4"], weights=path)
    assert net.layout == "caffe" and net.preprocess == "caffe"
    assert net.weights_id == f"caffe:{path}"
    loaded = net.convs.state_dict()
    assert set(loaded) == set(state)  # every tensor of the file is accounted for, nothing else is there
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key

    # CoCosNet's pre-processing: RGB [0, 1] -> BGR, minus the Caffe mean, times 255
    x = torch.rand(2, 3, 16, 16)
    bgr = x[:, [2, 1, 0]]
    caffe = (bgr - torch.tensor(vgg.CAFFE_MEAN_BGR).view(1, 3, 1, 1)) * 255
    expected = F.relu(F.conv2d(caffe, state["conv1_1.weight"], state["conv1_1.bias"], padding=1))
    torch.testing.assert_close(net(x)["relu1_1"], expected, rtol=1e-5, atol=1e-4)


def test_state_dict_that_is_not_vgg19_is_an_error(tmp_path: Path) -> None:
    extra = caffe_state() | {"conv6_1.weight": torch.zeros(1)}
    with pytest.raises(UserError, match="unexpected entries"):
        VGG19Features(["relu1_1"], weights=extra)
    missing = caffe_state()
    del missing["conv3_4.bias"]
    with pytest.raises(UserError, match=r"missing \['conv3_4.bias'\]"):
        VGG19Features(["relu1_1"], weights=missing)
    with pytest.raises(UserError, match="Unknown VGG19 layer"):
        VGG19Features(["relu6_1"], weights=None, widths=TINY)


def test_missing_torchvision_weights_raise_clear_error_without_network(hub_dir: Path) -> None:
    with pytest.raises(WeightsUnavailable) as err:
        VGG19Features(["relu1_2"], weights="torchvision")
    expected = hub_dir / "checkpoints" / "vgg19-dcbb9e9d.pth"
    message = str(err.value)
    assert str(expected) in message and "Fix:" in message and "vgg19_conv.pth" in message
    assert err.value.path == expected

    metric = SemanticConsistency(weights="torchvision")
    ctx = EvalContext(samples_dir=hub_dir, reference_dir=hub_dir, cache_dir=hub_dir, dataset_key="k", image_size=32)
    with pytest.raises(MetricSkipped, match="vgg19-dcbb9e9d.pth"):
        metric.setup(ctx)


def test_missing_weights_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="vgg19_conv.pth"):
        VGG19Features(["relu1_2"], weights=tmp_path / "models" / "vgg19_conv.pth")


def test_a_random_network_is_one_fixed_function_at_its_inputs_scale():
    """The tiny size's random VGG19: the same weights in every run, drawn apart from the run's random stream
    (a resumed run builds it again), and He-initialised so that deep features keep the input's magnitude."""
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    a = VGG19Features(["relu1_2", "relu5_2"], weights=None, widths=TINY)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(2)
    b = VGG19Features(["relu1_2", "relu5_2"], weights=None, widths=TINY)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    conv = a.convs["conv3_1"].weight  # He normal (fan_in, ReLU gain): std sqrt(2 / (9 * 8)) = 0.1667
    assert conv.std().item() == pytest.approx((2 / (9 * 8)) ** 0.5, rel=0.1)
    feats = a(torch.rand(4, 3, 64, 64))
    # PyTorch's default initialisation shrinks activations about 3x a layer: relu5_2 would be ~1e-5
    assert feats["relu5_2"].abs().mean() > 0.05 * feats["relu1_2"].abs().mean()
