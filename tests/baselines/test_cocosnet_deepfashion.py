"""CoCosNet on DeepFashion (layouts the tests write): the paired flag of the video-like pairs drives the paired-only
losses, and the README's DeepFashion options train and evaluate through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import default_collate

from midms.data.deepfashion import DeepFashion
from midms.testing.fake_deepfashion import write_fake_layout

CONF = Path(__file__).resolve().parents[2] / "conf"
SMALL_NETS = {"ngf": 4, "ndf": 4, "match_channels": 8, "spade_hidden": 8, "vgg_weights": "random",
              "vgg_widths": [4, 8, 8, 16, 16]}  # fmt: skip


def _model():
    import midms  # noqa: F401  (the config's resolvers)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["dataset=deepfashion", "model=cocosnet", "~preset", "model.size=tiny"])
    from midms.data.contract import DataSpec

    module = {**cfg.model.module, **SMALL_NETS}
    return hydra.utils.instantiate(module, data_spec=DataSpec(20, 64, None, False))


def test_the_paired_only_terms_follow_the_datasets_paired_flag(tmp_path):
    root = tmp_path / "deepfashion"
    write_fake_layout(root)
    torch.manual_seed(0)
    model = _model()
    assert model.settings["warp_patch"] and model.settings["warp_self_w"] == 100.0  # the README's command
    options = {"image_size": 64, "load_size": 64, "flip": False}
    for real_p, expect_paired in ((0.0, True), (1.0, False)):
        ds = DeepFashion(root, split="train", real_reference_probability=real_p, **options)
        batch = default_collate([ds[i] for i in range(4)])
        assert batch["paired"].tolist() == [expect_paired] * 4
        # the other view of the same garment is paired although it is another photo (CoCosNet's self_ref)
        assert expect_paired is False or any(a != b for a, b in zip(batch["id"], batch["exemplar_id"], strict=True))
        terms, _ = model.generator_losses(batch)
        if expect_paired:
            assert terms["warp_self"] > 0 and terms["fm"] > 0
        else:
            assert terms["warp_self"] == 0 and terms["fm"] == 0  # no ground truth for these exemplars


@pytest.mark.slow  # a training job through run.py (13 s); the fast tests check the options and losses one by one
def test_a_tiny_cocosnet_trains_and_evaluates_on_deepfashion_with_the_readme_options(run_entry, tmp_path):
    write_fake_layout(tmp_path / "data" / "deepfashion", garments={"train": 4, "val": 2})
    proc = run_entry(
        "dataset=deepfashion", "model=cocosnet", "~preset", "model.size=tiny", "dataset.image_size=64",
        "dataset.load_size=72", "dataset.datamodule.num_workers=0", "dataset.datamodule.batch_size=4",
        "model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]", "trainer.max_steps=2",
        "logger=csv", "evaluation.grid_rows=2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "logs").rglob("results.json")
    res = json.loads(path.read_text())
    assert res["status"] == "completed" and res["dataset"] == "deepfashion" and res["protocol"]["num_images"] == 6
    assert res["model_protocol"]["settings"]["warp_patch"] is True
    assert "deepfashion_self_pair.txt" in res["protocol"]["pairing"] and res["protocol"]["pairs_from_file"] == 6
    assert "labels" in res["skipped"]["matching_accuracy"] and "target" in res["skipped"]["psnr"]  # no made-up value
    assert res["metrics"]["swd"] > 0
