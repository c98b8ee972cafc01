"""The VGG metrics on the synthetic set's own perception network (``weights: domain``): trained on the training split,
loaded from its checked folder, named in the protocol, reported under their own names, and in metric-check's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

import midms
from midms.errors import MetricSkipped, UserError
from midms.metrics.base import EvalBatch, EvalContext
from midms.metrics.semantic import SemanticConsistency
from midms.metrics.style import StyleRelevance
from midms.nn.domain_vgg import metric_network, read_network
from midms.nn.vgg import VGG19Features

CONF = Path(midms.__file__).resolve().parents[1] / "conf"
# VGG19's 16 convolutions (Simonyan & Zisserman 2015, configuration E; torchvision's vgg19): conv1_1 ... conv5_4
CONV_NAMES = [f"conv{block}_{i}" for block, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1)]
SMALL = {"widths": [2, 2, 4, 4, 4], "steps": 4, "batch_size": 4, "scenes": 6}
DATA = {"_target_": "midms.data.synthetic.SyntheticPairs", "image_size": 32, "sizes": {"train": 8, "test": 4}}


def _ctx(tmp_path: Path) -> EvalContext:
    return EvalContext(samples_dir=tmp_path, reference_dir=tmp_path, cache_dir=tmp_path, dataset_key="k", image_size=32)


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    training = {k: v for k, v in SMALL.items() if k != "widths"}
    return metric_network(DATA, cache, SMALL["widths"], training)


def test_the_network_is_trained_on_the_training_split_and_cached_with_its_sha256(network: Path):
    info = json.loads((network / "network.json").read_text())
    assert network.parent.name == "loss_networks" and "-train-32px-" in network.name  # the training split's key
    assert info["widths"] == SMALL["widths"] and info["steps"] == SMALL["steps"]
    state, read = read_network(network)
    assert read["sha256"] == info["sha256"] and set(state) == {
        f"{c}.{p}" for c in CONV_NAMES for p in ("weight", "bias")
    }


def test_a_domain_metric_uses_that_network_and_names_it(network: Path, tmp_path: Path):
    metric = SemanticConsistency(weights="domain", network=SMALL, name="semantic_domain")
    metric.resolve_domain_network(DATA, network.parents[1])
    assert metric.weights == str(network)
    metric.setup(_ctx(tmp_path))
    reference = VGG19Features(metric.layers, weights=None, widths=SMALL["widths"], preprocess="signed")
    reference.convs.load_state_dict(load_file(network / "weights.safetensors"))  # the file, loaded independently
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ours, theirs = metric.features(images), reference.eval()(images)
    for layer in metric.layers:
        torch.testing.assert_close(ours[layer], theirs[layer])
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    metric.update(EvalBatch(fake=images, image=images, exemplar=images, names=["a", "b"], labels=labels))
    values = metric.compute(_ctx(tmp_path))
    assert set(values) == {"semantic_domain", *(f"semantic_domain_{layer}" for layer in metric.layers)}
    assert values["semantic_domain"] == pytest.approx(1.0, abs=1e-5)  # an image against itself
    assert metric.protocol["weights"].startswith("domain:") and "not the papers'" in metric.protocol["network"]


def test_without_a_synthetic_training_split_the_metric_is_skipped_with_the_fix(tmp_path: Path):
    metric = StyleRelevance(weights="domain", name="style_domain")
    with pytest.raises(MetricSkipped, match="weights=domain.*synthetic"):
        metric.setup(_ctx(tmp_path))
    plain = StyleRelevance(weights="torchvision")
    plain.resolve_domain_network(DATA, tmp_path)  # only weights: domain is resolved
    assert plain.weights == "torchvision"


def test_an_altered_network_file_is_refused(network: Path, tmp_path: Path):
    copy = tmp_path / "net"
    copy.mkdir()
    (copy / "network.json").write_text((network / "network.json").read_text())
    data = bytearray((network / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256"):
        read_network(copy)
    with pytest.raises(UserError, match="not a domain network folder"):
        read_network(tmp_path / "absent")


def test_run_py_resolves_the_preset_to_the_runs_training_data(tmp_path: Path):
    from midms.runner import build_metrics

    small = [f"metrics.{m}.network.{k}={json.dumps(v).replace(' ', '')}" for m in ("semantic_domain", "style_domain")
             for k, v in SMALL.items()]  # fmt: skip
    overrides = ["metrics=synthetic_domain", "dataset.image_size=32", f"paths.cache_dir={tmp_path}", *small]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])
    metrics = build_metrics(cfg)
    folders = {Path(metrics[m].weights) for m in ("semantic_domain", "style_domain")}
    assert len(folders) == 1  # one network for both metrics
    (folder,) = folders
    assert folder.parent == tmp_path / "loss_networks" and "-train-32px-" in folder.name
    assert metrics["semantic"].weights == "torchvision"  # the papers' metrics keep their weights


def test_metric_check_ranks_the_domain_metrics(tmp_path: Path, network: Path, monkeypatch):
    import benchmarks.metric_check as mc

    def small_metrics(names, preset):
        return {
            "semantic_domain": SemanticConsistency(weights="domain", network=SMALL, name="semantic_domain"),
            "style_domain": StyleRelevance(weights="domain", network=SMALL, name="style_domain"),
        }

    monkeypatch.setattr(mc, "build_metrics", small_metrics)
    pairs = mc.synthetic_pairs(4, 32)
    degradations = [d for d in mc.DEGRADATIONS if d.name == "style_error"]
    values, skipped, directions = mc.measure(pairs, None, "synthetic_domain", tmp_path / "w", network.parents[1],
                                             degradations)  # fmt: skip
    assert not skipped and directions["semantic_domain"] == "higher"
    table = mc.sensitivity(values, directions)
    assert {"semantic_domain", "style_domain_color"} <= set(table.index)
    assert np.isfinite(table.loc["semantic_domain", "style_error"])
