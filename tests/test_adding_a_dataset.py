"""The guide to adding a dataset (``docs/guides/adding-a-dataset.md``): its module and its YAML, from the page's own
code blocks, on a folder the test writes, with every tiny method through the real entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from e2e import MIDMS_TINY
from PIL import Image
from tiny_diffusers import write_tiny_weights

from midms.record import RunRecord

ROOT = Path(__file__).resolve().parents[1]
#: every method at its tiny size (the training-free row with tiny random weights in the released layouts)
MODELS = {
    "copy_exemplar": [],
    "cocosnet": [],
    "spade": [],
    "midms": MIDMS_TINY,
    "controlnet_ipadapter": ["model.resolution=64", "model.steps=2", "model.guidance_scale=3.0"],
}


def _guide_files() -> dict[str, str]:
    guide = (ROOT / "docs" / "guides" / "adding-a-dataset.md").read_text()
    return dict(re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", guide, flags=re.S))


def _write_folder(root: Path, split: str, count: int, size: int = 64, classes: int = 4) -> None:
    """Photos whose regions are the label map's classes, each class its own colour plus noise."""
    rng = np.random.default_rng(len(split))
    (root / split).mkdir(parents=True)
    for i in range(count):
        labels = np.zeros((size, size), np.uint8)
        for k in range(1, classes):
            y, x = rng.integers(0, size - 16, 2)
            labels[y : y + 16, x : x + 16] = k
        colours = rng.integers(0, 256, (classes, 3))
        photo = np.clip(colours[labels] + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(root / split / f"{split}{i:03d}.png")
        Image.fromarray(labels).save(root / split / f"{split}{i:03d}.labels.png")


@pytest.fixture
def guide_dataset(tmp_path):
    files = _guide_files()
    assert set(files) == {"my_datasets/folder_pairs.py", "conf/dataset/folder_pairs.yaml"}
    (tmp_path / "my_datasets").mkdir()
    (tmp_path / "my_datasets" / "folder_pairs.py").write_text(files["my_datasets/folder_pairs.py"])
    (tmp_path / "my_conf" / "dataset").mkdir(parents=True)
    (tmp_path / "my_conf" / "dataset" / "folder_pairs.yaml").write_text(files["conf/dataset/folder_pairs.yaml"])
    data = tmp_path / "data" / "folder_pairs"
    _write_folder(data, "train", 8)
    _write_folder(data, "test", 4)
    return tmp_path


#: in the fast set: the trivial method; the others with the slow tests (``make test-slow``)
FAST = ("copy_exemplar",)


@pytest.mark.parametrize("model", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in MODELS])
def test_the_guide_builds_a_dataset_every_tiny_method_trains_and_evaluates_on(isolated_env, guide_dataset, model):
    env = {**isolated_env, "PYTHONPATH": f"{guide_dataset}:{isolated_env['PYTHONPATH']}",
           "MIDMS_DATA": str(guide_dataset / "data")}  # fmt: skip
    run_dir = guide_dataset / "job"
    overrides = list(MODELS[model])
    if model == "controlnet_ipadapter":
        weights = write_tiny_weights(guide_dataset / "weights")
        overrides += [f"model.weights.{name}={folder}" for name, folder in weights.items()]
    cmd = [sys.executable, str(ROOT / "run.py"), "dataset=folder_pairs", f"model={model}", *overrides,
           f"hydra.searchpath=[file://{guide_dataset}/my_conf]", "trainer.max_epochs=1", "logger=none",
           "evaluation.grid_rows=2", f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    record = RunRecord.read(run_dir / "results.json")
    assert record.status == "completed" and record.dataset == "folder_pairs"
    assert record.protocol["pairing"] == "next photo" and record.protocol["num_images"] == 4
    assert {"swd", "semantic"} & set(record.metrics) | set(record.skipped)  # scored by the same metrics
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == [f"test{i:03d}.png" for i in range(4)]
    if model not in ("copy_exemplar", "controlnet_ipadapter"):  # the two with nothing to train
        assert record.train["global_step"] > 0
    if model in ("cocosnet", "midms", "copy_exemplar"):  # the methods that warp: their matching is measured
        assert 0 <= record.metrics["matching_accuracy"] <= 1
