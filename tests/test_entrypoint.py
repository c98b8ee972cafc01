"""The real entry point, end to end in a subprocess, with tiny settings (lightning-hydra-template style)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e import TINY

from midms.data.synthetic import SyntheticPairs
from midms.reporting import collect_jobs

# the runner's own paths, exercised with the trivial model (the quickstart's default is midms)
BASE = [*TINY, "model=copy_exemplar"]


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_single_run_writes_results_and_offline_wandb(run_entry, tmp_path):
    proc = run_entry(*BASE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "completed"
    assert res["model"] == "copy_exemplar" and res["dataset"] == "synthetic" and res["ablation"] == "none"
    assert {"psnr", "ssim", "swd", "swd_32", "swd_16", "swd_ci95", "matching_accuracy"} == set(res["metrics"])
    assert res["metrics"]["swd_ci95"] > 0 and res["protocol"]["metrics"]["swd.bootstrap"]["resamples"] == 25
    # offline: weight-based metrics are skipped with the file and the fix, never given a made-up value
    assert {"fid", "kid", "lpips", "semantic", "style"} <= set(res["skipped"])
    assert "inception-2015-12-05.pt" in res["skipped"]["fid"] and "Fix:" in res["skipped"]["fid"]
    # copy_exemplar's correspondence is the identity: its accuracy is how often the two label maps agree
    ds = SyntheticPairs("test", image_size=32, sizes={"train": 16, "val": 4, "test": 8})
    agree = [float((ds[i]["labels"] == ds[i]["exemplar_labels"]).double().mean()) for i in range(8)]
    assert res["metrics"]["matching_accuracy"] == pytest.approx(sum(agree) / 8, abs=1e-6)
    assert 0 < res["metrics"]["psnr"] < 40
    assert res["protocol"]["num_images"] == 8 and res["protocol"]["image_size"] == 32
    assert res["protocol"]["image_format"] == "png" and len(res["config_hash"]) == 16
    # where the time went: every stage, adding up to the total, printed as a table
    times = res["times"]
    assert list(times) == ["startup", "setup", "translation", "scoring", "other", "total"]
    assert min(times.values()) >= 0 and times["other"] < 0.25 * times["total"]  # the named stages hold the time
    assert sum(v for k, v in times.items() if k != "total") == pytest.approx(times["total"], abs=0.05)
    assert "where the time went" in proc.stdout + proc.stderr
    run_dir = Path(res["run_dir"])
    assert sorted(p.stem for p in (run_dir / "samples").glob("*.png")) == [f"test_{i:05d}" for i in range(8)]
    # W&B chose offline mode by itself (no credentials) and kept the run for `wandb sync`
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert res["wandb"]["id"] in offline[0].name


def test_multirun_basic_launcher_records_every_job_and_goes_on_after_a_failed_one(run_entry, tmp_path):
    proc = run_entry("-m", *BASE, "dataset.image_size=7,32", "dataset.input=edges,labels", "logger=csv")
    assert proc.returncode == 1  # the sweep ran to the end, and the exit code says a job failed
    assert "Traceback" not in proc.stdout + proc.stderr  # a user mistake: one message, no traceback
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    results = _results(sweep)
    failed = [r for r in results if r["status"] == "failed"]
    completed = [r for r in results if r["status"] == "completed"]
    assert len(failed) == 2 and all("dataset.image_size=7" in r["error"] for r in failed)
    assert sorted(r["protocol"]["input"] for r in completed) == ["edges", "labels"]
    # copy_exemplar ignores the input, and both jobs pair the same scenes: identical scores
    assert completed[0]["metrics"]["psnr"] == completed[1]["metrics"]["psnr"]
    assert all((Path(r["run_dir"]) / "csv" / "metrics.csv").exists() for r in completed)
    table, _ = collect_jobs(sweep)
    assert len(table) == 4 and sorted(table["status"]) == ["completed", "completed", "failed", "failed"]
    assert all("image_size" in e for e in table[table["status"] == "failed"]["error"])


@pytest.mark.slow  # submitit's local executor spawns a process per job: half a minute
def test_multirun_submitit_local_launcher(run_entry, tmp_path):
    proc = run_entry("-m", "hydra/launcher=submitit_local", *BASE, "dataset.input=edges,labels", "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    results = _results(sweep)
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    assert sorted(r["protocol"]["input"] for r in results) == ["edges", "labels"]


def test_training_path_logs_train_metrics_and_checkpoint(run_entry, tmp_path):
    model = ["model.module._target_=tiny_models.TinyTrainable", "model.name=tiny"]
    proc = run_entry(*BASE, *model, "logger=csv", "trainer.log_every_n_steps=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "completed" and res["train"]["global_step"] == 4  # 16 scenes / batch 4, 1 epoch
    run_dir = Path(res["run_dir"])
    assert "train/loss" in (run_dir / "csv" / "metrics.csv").read_text()
    assert list(run_dir.rglob("*.ckpt"))


def test_exception_in_training_leaves_failed_results(run_entry, tmp_path):
    proc = run_entry(*BASE, "model.module._target_=tiny_models.FailingTrainable", "model.name=tiny", "logger=none")
    assert proc.returncode == 1
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "failed"
    assert "deliberate failure in training_step" in res["error"]
    assert "training_step" in res["traceback"]


def test_unknown_model_is_one_clear_paragraph(run_entry):
    proc = run_entry("model=no_such_model")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Could not find 'model/no_such_model'" in out and "copy_exemplar" in out
    assert "Traceback" not in out


def test_ablation_for_another_model_is_a_clear_error(run_entry, tmp_path):
    proc = run_entry(*BASE, "hydra.searchpath=[pkg://support_configs]", "ablation=other_model_only", "logger=none")
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert "applies to model=other_model" in out and "ablation=none" in out
    (res,) = _results(tmp_path / "logs" / "runs")
    assert res["status"] == "failed" and "applies to" in res["error"]


@pytest.mark.slow
def test_two_process_ddp_on_cpu_matches_a_single_process(run_entry, tmp_path):
    """gloo DDP with 2 × batch 4 equals one process with batch 8 (same samples per step, averaged gradients)."""
    model = ["model.module._target_=tiny_models.TinyTrainable", "model.name=tiny", "trainer.max_epochs=2"]
    common = [*BASE, *model, "logger=csv", "~metrics.swd"]
    single = run_entry(*common, "dataset.datamodule.batch_size=8", "hydra.run.dir=" + str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false"]
    two = run_entry(*common, *ddp, "dataset.datamodule.batch_size=4", "hydra.run.dir=" + str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert a["status"] == b["status"] == "completed" and a["train"]["global_step"] == b["train"]["global_step"] == 4
    assert b["metrics"]["psnr"] == pytest.approx(a["metrics"]["psnr"], abs=1e-3)
    assert b["metrics"]["ssim"] == pytest.approx(a["metrics"]["ssim"], abs=1e-4)
    assert len(list((tmp_path / "two" / "samples").glob("*.png"))) == 8  # written once, by rank zero
