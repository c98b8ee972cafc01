"""``run.py model=midms`` end to end: prior stage, MIDMs fine-tuning and evaluation on tiny synthetic data."""

from __future__ import annotations

import json

import pytest
from e2e import MIDMS_TINY, TINY


def _results(root):
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_quickstart_trains_prior_and_midms_then_evaluates(run_entry, tmp_path):
    proc = run_entry(
        *TINY, "model=midms", *MIDMS_TINY, "ablation=no_refine", "logger=csv", "trainer.log_every_n_steps=1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "completed", res.get("error")
    assert res["model"] == "midms" and res["ablation"] == "no_refine" and res["train"]["global_step"] == 4
    assert 0 <= res["metrics"]["matching_accuracy"] <= 1 and res["metrics"]["psnr"] > 0
    metrics_csv = next((tmp_path / "logs" / "runs").rglob("metrics.csv")).read_text()
    # prior stage, MIDMs warm-up (domain loss) and end to end (contextual loss, only after warm-up) all ran
    assert "prior/autoencoder_psnr" in metrics_csv
    assert all(f"train/{k}" in metrics_csv for k in ("domain", "contextual"))
    stage = res["model_protocol"]["prior_stage"]
    assert stage["scale_factor"] > 0 and stage["cache"].startswith(str(tmp_path))  # cached under paths.cache_dir


@pytest.mark.slow
def test_two_process_ddp_on_cpu_runs_every_phase(run_entry, isolated_env, tmp_path):
    """gloo DDP on 2 CPU processes through the prior stage (trained inside the fit, after DDP has wrapped the model)
    and both MIDMs phases: each phase freezes other parameters, so DDP must find unused parameters
    (``conf/trainer/ddp.yaml``); every rank must agree on the phase."""
    isolated_env["OMP_NUM_THREADS"] = "1"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false"]
    proc = run_entry(
        *TINY,
        "model=midms",
        *MIDMS_TINY,
        "ablation=no_refine",
        *ddp,
        "trainer.max_epochs=4",
        "logger=csv",
        "trainer.log_every_n_steps=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "completed", res.get("error")
    assert res["train"]["global_step"] == 4 * 2  # 16 scenes / (batch 4 × 2 ranks) a epoch
    metrics_csv = next((tmp_path / "logs" / "runs").rglob("metrics.csv")).read_text()
    assert all(f"train/{k}" in metrics_csv for k in ("domain", "contextual"))
    assert 0 <= res["metrics"]["matching_accuracy"] <= 1


@pytest.mark.slow
def test_ablation_sweep_runs_every_midms_ablation(run_entry, tmp_path):
    names = ",".join(
        ["no_confidence", "no_interleave", "no_refine"]
        + [f"interleave_steps_{k}" for k in (1, 2, 4)]
        + [f"ddim_steps_{n}" for n in (8, 16, 32)]
    )
    proc = run_entry("-m", *TINY, "model=midms", *MIDMS_TINY, f"ablation={names}", "logger=none", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _results(tmp_path / "logs" / "multiruns")
    assert sorted(r["ablation"] for r in results) == sorted(names.split(","))
    assert {r["status"] for r in results} == {"completed"}


def test_every_midms_ablation_composes_and_rejects_other_models():
    from hydra import compose, initialize_config_dir

    from midms.errors import UserError
    from midms.runner import check_config

    conf = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "conf")
    expected = {
        "no_confidence": ("confidence", False),
        "no_interleave": ("rematch_at", []),
        "no_refine": ("refine", False),
        **{f"interleave_steps_{k}": ("interleave_steps", k) for k in (1, 2, 4)},
        **{f"ddim_steps_{n}": ("ddim_steps", n) for n in (8, 16, 32)},
    }
    with initialize_config_dir(config_dir=conf, version_base=None):
        for name, (key, value) in expected.items():
            cfg = compose("config", overrides=["model=midms", f"ablation={name}"])
            assert cfg.ablation.name == name and cfg.model.module.sampler[key] == value
            check_config(cfg)
            with pytest.raises(UserError, match="applies to model=midms"):
                check_config(compose("config", overrides=["model=copy_exemplar", f"ablation={name}"]))
