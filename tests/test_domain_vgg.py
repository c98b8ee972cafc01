"""The domain loss network (vgg_weights=domain): what it is taught, on which data, its cache, and a GAN step
with it moving the output towards the ground truth."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import default_collate

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError
from midms.nn.domain_vgg import DomainTraining, prepare_domain_vgg, train_domain_vgg, training_scenes

SIZES = {"train": 16, "val": 4, "test": 16}


def _split(split: str, size: int = 32) -> SyntheticPairs:
    return SyntheticPairs(split, image_size=size, sizes=SIZES)


def test_it_sees_training_scenes_only():
    data = training_scenes(_split("train"), scenes=16)
    assert data["image"].shape == (32, 3, 32, 32)  # each scene in its own style and in its partner's
    test_images = [_split("test")[i][key] for i in range(16) for key in ("image", "target", "exemplar")]
    for image in data["image"]:
        assert not any(torch.equal(image, t) for t in test_images)
    train = _split("train")
    assert torch.equal(data["image"][0], train[0]["image"]) and torch.equal(data["image"][1], train[0]["target"])
    with pytest.raises(UserError, match="training split"):
        training_scenes(_split("test"), scenes=4)


def test_its_targets_are_the_scene_s_classes_colours_and_texture_detail():
    train = _split("train")
    scene = train.scene(2)
    seen = train.appearance(2)
    assert (seen["labels"] == scene.labels).all()
    for k in range(train.num_classes):  # the region's colour is its class's palette entry, everywhere in the region
        region = scene.labels == k
        if region.any():
            assert (seen["colour"][:, region] == scene.style.palette[k][:, None].astype("float32")).all()
    assert (seen["image"] - seen["colour"] == seen["detail"]).all()


def test_training_lowers_every_term():
    data = training_scenes(_split("train"), scenes=16)
    _, summary = train_domain_vgg(data, [4, 8, 8, 8, 8], 6, DomainTraining(steps=60, batch_size=8, lr=3e-3))
    first, last = summary["first"], summary["last"]
    for term in ("class", "colour", "detail"):
        assert last[term] < first[term], term


def test_it_is_cached_once_with_its_hash_and_retrained_when_the_file_is_damaged(tmp_path, caplog):
    training = DomainTraining(steps=3, batch_size=4, scenes=4)
    state, info = prepare_domain_vgg(_split("train"), [2, 2, 2, 2, 2], tmp_path, training)
    folder = tmp_path / "loss_networks"
    (entry,) = [p for p in folder.iterdir() if p.is_dir()]
    import hashlib

    assert info["sha256"] == hashlib.sha256((entry / "weights.safetensors").read_bytes()).hexdigest()
    assert json.loads((entry / "network.json").read_text())["sha256"] == info["sha256"]
    again, info2 = prepare_domain_vgg(_split("train"), [2, 2, 2, 2, 2], tmp_path, training)
    assert info2["sha256"] == info["sha256"] and all(torch.equal(state[k], again[k]) for k in state)
    (entry / "weights.safetensors").write_bytes(b"truncated")
    _, info3 = prepare_domain_vgg(_split("train"), [2, 2, 2, 2, 2], tmp_path, training)
    assert "cannot be read" in caplog.text and info3["sha256"] == info["sha256"]  # the same training, again


#: CoCosNet's released base rate and initialisation (options/train_options.py --lr 0.0002, base_options.py
#: --init_variance 0.02) on the tiny networks
RELEASED_RECIPE = ["model.sizes.tiny.lr=2e-4", "model.sizes.tiny.init_gain=0.02"]


def test_a_cocosnet_step_with_it_moves_the_output_towards_the_target(tmp_path):
    """One CoCosNet with the domain network trains a few steps on a fixed batch; its output's L1 to the
    ground truth falls. At the released rate and initialisation: the tiny size's ten times higher rate spends its
    first few dozen steps in the GAN's transient (its result is the slow matrix test's,
    tests/baselines/test_cocosnet_e2e.py)."""
    import lightning as L
    from hydra import compose, initialize_config_dir

    from midms.resources import conf_dir

    train = SyntheticPairs("train", image_size=64, sizes={"train": 8, "val": 2, "test": 2})
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["model=cocosnet", "paths.output_dir=/tmp/unused", "model.vgg_weights=domain",
                                           f"paths.cache_dir={tmp_path}", "model.domain_training.steps=40",
                                           "model.domain_training.scenes=8",
                                           *RELEASED_RECIPE])  # fmt: skip
    import hydra

    L.seed_everything(0)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=train.spec)
    batch = default_collate([train[i] for i in range(8)])

    def distance() -> float:
        with torch.no_grad():
            return float((model.eval().translate(batch) - batch["target"]).abs().mean())

    trainer = L.Trainer(max_steps=24, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    loader = torch.utils.data.DataLoader(train, batch_size=8)
    before = distance()
    trainer.fit(model.train(), train_dataloaders=loader)
    assert model.protocol["loss_network"]["kind"] == "domain" and model.protocol["loss_network"]["sha256"]
    assert model.vgg.weights_id == "domain"
    assert distance() < before


def test_each_model_feeds_the_network_the_range_it_was_trained_on():
    """The network is trained on images in [-1, 1]: CoCosNet feeds [0, 1] (so "signed" pre-processing), SPADE
    [-1, 1] (none); before training starts it is a random network marked as the domain one."""
    from hydra import compose, initialize_config_dir

    from midms.resources import conf_dir

    spec = SyntheticPairs("train", image_size=64, sizes=SIZES).spec
    import hydra

    for model, preprocess in (("cocosnet", "signed"), ("spade", "none")):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(
                "config", overrides=[f"model={model}", "paths.output_dir=/tmp/unused", "model.vgg_weights=domain"]
            )
        net = hydra.utils.instantiate(cfg.model.module, data_spec=spec)
        assert net.vgg.weights_id == "domain" and net.vgg.preprocess == preprocess, model
        assert "warning" not in net.protocol  # not a random VGG19 once trained
        x = torch.rand(1, 3, 8, 8)
        assert torch.allclose(net.vgg.normalize(x), x * 2 - 1 if preprocess == "signed" else x)


@pytest.mark.slow  # an end-to-end MIDMs run (its prior stage too); the fast set keeps the CoCosNet fit above
def test_midms_trains_with_the_domain_network(run_entry, tmp_path):
    from e2e import MIDMS_TINY, TINY

    from midms.record import RunRecord

    proc = run_entry(*TINY, *MIDMS_TINY, "model=midms", "model.sizes.tiny.vgg.weights=domain", "logger=none",
                     "+model.sizes.tiny.vgg.training={steps: 5, batch_size: 4, scenes: 8}", "metrics=pixel",
                     f"hydra.run.dir={tmp_path / 'job'}", timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = RunRecord.read(tmp_path / "job" / "results.json")
    network = record.model_protocol["loss_network"]
    assert network["kind"] == "domain" and len(network["sha256"]) == 64 and network["steps"] == 5
    assert (tmp_path / "cache" / "loss_networks").is_dir() and network["cache"].startswith(str(tmp_path / "cache"))
    times = record.times  # the stages before the first step are shown apart from the training
    assert {"prior", "loss network", "training"} <= set(times) and times["loss network"] > 0 and times["prior"] > 0
    assert times["other"] < 0.25 * times["total"]
