"""``model=controlnet_ipadapter``: tiny random SD / ControlNet / IP-Adapter weights through the real loading and
sampling code (``tests/support/tiny_diffusers.py``): shapes, determinism, the exemplar's effect, the condition images,
the recorded protocol, and the error for absent weights."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from midms.baselines.controlnet_ipadapter.control import control_image
from midms.baselines.controlnet_ipadapter.model import ControlNetIPAdapter, pair_seed
from tiny_diffusers import write_tiny_weights
from torch.utils.data import default_collate

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "conf"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_weights(tmp_path_factory.mktemp("tiny_sd"))


def _data() -> SyntheticPairs:
    sizes = {"train": 2, "val": 2, "test": 4}
    return SyntheticPairs(split="test", image_size=64, num_classes=4, input="edges", sizes=sizes, seed=0)


def _model(weights, **kw) -> ControlNetIPAdapter:
    settings = {"control": "edges", "resolution": 64, "steps": 3, **kw}
    folders = {k: str(v) for k, v in weights.items()}
    return ControlNetIPAdapter(_data().spec, **folders, **settings)


def _batch(n: int = 3) -> dict:
    ds = _data()
    return default_collate([ds[i] for i in range(n)])


def test_outputs_have_the_evaluation_size_and_do_not_depend_on_the_batch(weights):
    model, batch = _model(weights), _batch()
    out = model.translate(batch)
    assert out.shape == (3, 3, 64, 64) and out.dtype == torch.float32 and out.abs().max() <= 1
    assert torch.equal(out, model.translate(batch))  # each pair's noise comes from its own seeded generator
    alone = model.translate({k: v[1:2] for k, v in batch.items()})
    torch.testing.assert_close(alone, out[1:2], rtol=0, atol=1e-5)
    other_seed = _model(weights, seed=1).translate(batch)
    assert (other_seed - out).abs().mean() > 1e-3


def test_the_exemplar_changes_the_output_and_the_input_too(weights):
    model, batch = _model(weights), _batch()
    out = model.translate(batch)
    # the same pair ids (the same noise), another exemplar image: only the image prompt differs
    swapped = model.translate({**batch, "exemplar": batch["exemplar"].flip(0)})
    assert (swapped[0] - out[0]).abs().mean() > 3e-3
    no_adapter = _model(weights, ip_adapter_scale=0.0)
    a = no_adapter.translate(batch)
    b = no_adapter.translate({**batch, "exemplar": batch["exemplar"].flip(0)})
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # scale 0: the exemplar has no way in
    mirrored = model.translate({**batch, "semantics": batch["semantics"].flip(-1)})
    assert (mirrored - out).abs().mean() > 3e-2


def test_the_protocol_records_every_value_used(weights):
    model = _model(weights, scheduler="unipc", guidance_scale=5.0, ip_adapter_scale=0.6)
    p = model.protocol
    sampling = (p["scheduler"], p["num_inference_steps"], p["guidance_scale"], p["ip_adapter_scale"])
    assert sampling == ("unipc", 3, 5.0, 0.6)
    assert type(model.pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert p["prompt"] == "best quality, high quality" and p["controlnet_conditioning_scale"] == 1.0
    assert p["generation_size"] == 64 and p["output_resize"].startswith("64 -> 64 px")
    assert len(p["weights"]["ip_adapter"]["sha256"]) == 64 and p["dtype"] == "float32"
    assert json.loads(json.dumps(p)) == p  # plain values: it goes into results.json


def test_absent_weights_are_one_error_naming_each_folder_and_hub_id(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["paths.output_dir=/tmp/u", f"paths.cache_dir={tmp_path}", "model=controlnet_ipadapter"],
        )
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg.model.module, data_spec=_data().spec)
    message = str(info.value)
    for hub_id, folder in (
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "stable-diffusion-v1-5--stable-diffusion-v1-5"),
        ("lllyasviel/sd-controlnet-canny", "lllyasviel--sd-controlnet-canny"),
        ("h94/IP-Adapter", "h94--IP-Adapter"),
    ):
        assert f"hf download {hub_id} --local-dir {tmp_path / 'weights' / folder}" in message
    assert "ip-adapter_sd15.safetensors" in message and "image_encoder" in message


def test_edges_are_drawn_white_on_black_and_resized_without_new_values():
    semantics = torch.zeros(1, 2, 4, 4)
    semantics[0, 0, 1, 2] = 1.0
    image = control_image(semantics, "edges", 8)
    assert image.shape == (1, 3, 8, 8) and set(image.unique().tolist()) == {0.0, 1.0}
    assert image[0, :, 2:4, 4:6].eq(1).all() and image.sum() == 3 * 4
    with pytest.raises(UserError, match="edge channel 5"):
        control_image(semantics, "edges", 8, edge_channel=5)


def test_ade20k_labels_are_drawn_in_the_annotators_colours():
    """mmsegmentation's ADE20K palette, which ControlNet's segmentation annotator draws with: wall (class 1)
    (120, 120, 120), building (2) (180, 120, 120), sky (3) (6, 230, 230), flag (150) (92, 0, 255)."""
    labels = torch.tensor([[0, 1], [2, 3]])
    labels_150 = torch.tensor([[150, 150], [150, 150]])
    semantics = torch.nn.functional.one_hot(torch.stack([labels, labels_150]), 151).permute(0, 3, 1, 2).float()
    image = (control_image(semantics, "ade20k", 2) * 255).round().int()
    assert image[0, :, 0, 0].tolist() == [0, 0, 0]  # unknown
    assert image[0, :, 0, 1].tolist() == [120, 120, 120]
    assert image[0, :, 1, 0].tolist() == [180, 120, 120]
    assert image[0, :, 1, 1].tolist() == [6, 230, 230]
    assert image[1, :, 0, 0].tolist() == [92, 0, 255]
    with pytest.raises(UserError, match="151 channels"):
        control_image(torch.zeros(1, 4, 2, 2), "ade20k", 2)


def test_a_deepfashion_pose_is_drawn_as_its_openpose_skeleton_channels(tmp_path):
    """The OpenPose ControlNet sees the skeleton drawing (channels 0-2 of the pose input), not the distance maps."""
    from midms.data.deepfashion import DeepFashion
    from midms.testing.fake_deepfashion import write_fake_layout

    write_fake_layout(tmp_path / "df")
    sample = DeepFashion(tmp_path / "df", split="val", image_size=32, load_size=32, flip=False)[0]
    semantics = sample["semantics"][None]
    image = control_image(semantics, "pose", 64)
    expected = torch.nn.functional.interpolate(semantics[:, :3], size=(64, 64), mode="nearest")
    assert image.shape == (1, 3, 64, 64) and torch.equal(image, expected) and image.max() == 1.0
    with pytest.raises(UserError, match="20 channels"):
        control_image(torch.zeros(1, 3, 2, 2), "pose", 2)


def test_pair_seeds_follow_the_recorded_rule():
    import zlib

    assert pair_seed(7, "a", "b") == 7 + zlib.crc32(b"a|b")
    assert pair_seed(0, "a", "b") != pair_seed(0, "b", "a")


@pytest.mark.slow  # a subprocess through run.py (about 30 s): the same loading and sampling as above
def test_run_py_evaluates_it_without_training_and_records_the_values_in_results_json(run_entry, weights, tmp_path):
    out = tmp_path / "run"
    proc = run_entry(
        "model=controlnet_ipadapter",
        *(f"model.weights.{name}={folder}" for name, folder in weights.items()),
        "model.resolution=64",
        "model.steps=2",
        "model.guidance_scale=3.0",
        "dataset.sizes.test=8",
        "metrics=pixel",
        "logger=none",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["status"] == "completed" and result["train"] is None  # nothing to train
    protocol = result["model_protocol"]
    assert (protocol["num_inference_steps"], protocol["guidance_scale"], protocol["scheduler"]) == (2, 3.0, "ddim")
    assert protocol["weights"]["controlnet"]["hub_id"] == "lllyasviel/sd-controlnet-canny"
    assert len(list((out / "samples").rglob("*.png"))) >= 8 and "psnr" in result["metrics"]


def test_half_precision_reaches_every_network_and_the_output_is_float32(weights):
    model = _model(weights, dtype="bfloat16", steps=2)
    for name in ("unet", "controlnet", "vae", "text_encoder", "image_encoder"):
        assert getattr(model.pipe, name).dtype == torch.bfloat16, name
    out = model.translate(_batch(2))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
