"""The default matrix's MIDMs job learns the synthetic translation: it beats copy_exemplar against the ground truth
and its correspondence reaches the matching-accuracy floor. The fast set checks, per phase, that training lowers
the losses (``test_training.py``); this is the check that the budget the benchmark ships with is enough."""

from __future__ import annotations

import json

import pytest

from midms.benchmarking.matrix import load_matrix

#: the floor of matching accuracy (warped exemplar labels against the input's labels) a method must reach on the
#: synthetic default: well above copy_exemplar's identity correspondence (0.59 on these roughly aligned scenes)
MATCHING_FLOOR = 0.7


def _job_overrides(model: str) -> list[str]:
    matrix = load_matrix("default")
    (job,) = [j for j in matrix.jobs() if j.model == model and j.seed == 0 and j.ablation == "none"]
    return job.hydra_overrides(matrix.experiment)


def _metrics(run_entry, tmp_path, model: str, overrides: list[str] | None = None) -> dict:
    out = tmp_path / model
    overrides = _job_overrides(model) if overrides is None else overrides
    proc = run_entry(*overrides, "logger=none", f"hydra.run.dir={out}", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["status"] == "completed"
    return result["metrics"]


@pytest.mark.slow  # the default matrix's MIDMs job: the prior stage, 320 warm-up steps, 128 test pairs (~6 min)
def test_the_default_midms_job_beats_copy_exemplar_and_reaches_the_matching_floor(run_entry, tmp_path):
    copy = _metrics(run_entry, tmp_path, "copy_exemplar")
    midms = _metrics(run_entry, tmp_path, "midms")
    assert midms["psnr"] > copy["psnr"] + 1.0, (midms, copy)
    assert midms["matching_accuracy"] >= MATCHING_FLOOR > copy["matching_accuracy"], (midms, copy)


@pytest.mark.slow  # `make run`: the quickstart's prior stage, 128 warm-up steps, 128 test pairs (~2 min)
def test_the_quickstart_beats_copy_exemplar_on_psnr_and_matching_accuracy(run_entry, tmp_path):
    copy = _metrics(run_entry, tmp_path, "copy_exemplar", ["model=copy_exemplar"])
    midms = _metrics(run_entry, tmp_path, "midms", [])  # `python run.py` as it ships
    assert midms["psnr"] > copy["psnr"] + 0.5, (midms, copy)
    assert midms["matching_accuracy"] > copy["matching_accuracy"], (midms, copy)
