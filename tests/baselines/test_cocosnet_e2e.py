"""``model=cocosnet`` through the real entry point: training, evaluation against copy_exemplar, resuming.

All slow (each job trains a GAN on the CPU for tens of seconds); the fast checks of the same paths are
in test_cocosnet_model.py (in-process training, seeding, the G/D steps).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

DATA = [
    "dataset.image_size=64",
    "dataset.sizes.train=64",
    "dataset.sizes.val=4",
    "dataset.sizes.test=16",
    "dataset.datamodule.batch_size=8",
    "evaluation.grid_rows=2",
    "metrics=pixel",
]
COCOSNET = ["model=cocosnet", "model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]"]


@pytest.fixture
def entry(run_entry, isolated_env):
    isolated_env["OMP_NUM_THREADS"] = "1"  # small convolutions: threads only add overhead on a shared CPU
    return run_entry


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"), key=lambda p: p.stat().st_mtime)]


def _epoch_values(run_dir: Path, key: str) -> list[float]:
    (path,) = run_dir.rglob("metrics.csv")
    return [float(r[key]) for r in csv.DictReader(path.open()) if r.get(key)]


def _matrix_job(model: str) -> list[str]:
    """The default matrix's overrides of one model's job (benchmarks/default.yaml): 64 px, the default 512 / 64 / 128
    scenes, the model's budget."""
    matrix = yaml.safe_load((Path(__file__).resolve().parents[2] / "benchmarks" / "default.yaml").read_text())
    return [*matrix["overrides"], *matrix.get("model_overrides", {}).get(model, []), f"model={model}"]


def test_the_matrix_s_tiny_cocosnet_beats_copy_exemplar_by_2_db_and_matches(run_entry, tmp_path):
    """The default matrix's CoCosNet job (seed 0, its budget and the synthetic recipe's domain loss network) against
    copy_exemplar on the same 128 test pairs: at least 2 dB more PSNR, a higher SSIM, and a matching accuracy of
    at least 0.7; its reconstruction terms fall over the run."""
    proc = run_entry(*_matrix_job("copy_exemplar"), "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_entry(*_matrix_job("cocosnet"), "evaluation.grid_rows=2", "logger=csv", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    copy, cocosnet = _results(tmp_path / "logs" / "runs")
    assert copy["model"] == "copy_exemplar" and cocosnet["model"] == "cocosnet"
    assert cocosnet["status"] == "completed" and cocosnet["train"]["global_step"] == 9 * 32 * 2  # G and D steps
    assert cocosnet["model_protocol"]["loss_network"]["kind"] == "domain"
    recon = [
        sum(vals)
        for vals in zip(
            *(_epoch_values(Path(cocosnet["run_dir"]), f"train/{k}_epoch") for k in ("fm", "warp_self")), strict=True
        )
    ]
    assert recon[-1] < recon[0]
    ours, theirs = cocosnet["metrics"], copy["metrics"]
    assert ours["psnr"] >= theirs["psnr"] + 2.0, (ours["psnr"], theirs["psnr"])
    assert ours["ssim"] > theirs["ssim"], (ours["ssim"], theirs["ssim"])
    assert ours["matching_accuracy"] >= 0.7


def test_resumed_run_continues_from_the_checkpoint_step(entry, tmp_path):
    small = [*DATA, "dataset.sizes.train=16", *COCOSNET, "logger=none", "evaluate=false"]
    proc = entry(*small, "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first,) = _results(tmp_path / "logs" / "runs")
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert first["train"]["global_step"] == 2 * 2  # 16 scenes / batch 8, a G and a D step each
    proc = entry(*small, "trainer.max_epochs=2", f"ckpt_path='{ckpt}'")  # quoted: the name has '='
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = _results(tmp_path / "logs" / "runs")[-1]
    assert second["train"]["global_step"] == 2 * first["train"]["global_step"]


def test_two_process_ddp_on_cpu_trains(entry, tmp_path):
    """The alternating G/D steps leave one network without gradients per backward: DDP needs unused-parameter
    detection (``trainer.strategy=ddp_find_unused_parameters_true``)."""
    ddp = [
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp_find_unused_parameters_true",
    ]
    proc = entry(*DATA, "dataset.sizes.train=16", *COCOSNET, *ddp, "logger=none", "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "completed" and res["train"]["global_step"] == 2  # 16 scenes / (8 × 2 ranks), G and D
    assert 0 < res["metrics"]["psnr"] < 40
