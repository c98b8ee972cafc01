"""A W&B workspace for any sweep: named runs with their job type, the identity the record keeps, the spec built
offline from a sweep folder's records, and what a job sends (per-image thumbnails, results.json, curves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e import TINY
from hydra import compose, initialize_config_dir

from midms.record import RunRecord
from midms.reporting import cli
from midms.tracking.loggers import build_loggers, run_name, wandb_identity
from midms.tracking.workspace import build_workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_ENTITY", "WANDB_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: offline by itself
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_a_job_run_is_named_typed_and_remembered(offline_env, tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output_dir={tmp_path}", "model=cocosnet", "ablation=cocosnet_no_ctx",
                                           "seed=3", "logger=wandb"])  # fmt: skip
    (logger,) = build_loggers(cfg, group="sweep_x", tags=[], job_type="evaluate")
    run = logger.experiment
    assert run_name(cfg) == "cocosnet-synthetic-cocosnet_no_ctx-s3" == run.name
    assert run.group == "sweep_x" and run.job_type == "evaluate"
    assert run.config["variant"] == "cocosnet/cocosnet_no_ctx" and run.config["model"]["name"] == "cocosnet"
    identity = wandb_identity([logger])
    assert identity["name"] == run.name and identity["group"] == "sweep_x" and identity["project"] == "midms-bench"
    run.finish()


def test_a_sweep_publishes_a_workspace_spec_offline(run_entry, tmp_path, offline_env):
    """Two jobs of a real sweep through run.py -m (W&B offline), then `midms-report <sweep> --publish-workspace`."""
    proc = run_entry("-m", *TINY, "model=copy_exemplar", "seed=0,1", "metrics=pixel")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    records = [RunRecord.read(p) for p in sorted(sweep.rglob("results.json"))]
    assert [r.wandb["name"] for r in records] == ["copy_exemplar-synthetic-none-s0", "copy_exemplar-synthetic-none-s1"]
    assert {r.wandb["group"] for r in records} == {sweep.name}

    assert cli.main([str(sweep), "--publish-workspace"]) == 0
    spec = json.loads((sweep / "report" / "wandb_workspace.json").read_text())
    assert spec["groups"] == [sweep.name] and spec["project"] == "midms-bench"
    headline = records[0].metric_info
    expected = sorted(k for k, v in headline.items() if v["headline"])
    assert [p["metric"] for p in spec["panels"]] == [f"eval/{k}" for k in expected]
    assert spec["panels"][0]["title"] == "psnr (higher is better, dB)"
    assert spec["columns"] == [f"summary:eval/{k}" for k in sorted(records[0].metrics)]
    workspace = build_workspace(spec)
    bars, curves, samples = workspace.sections
    assert [p.metrics for p in bars.panels] == [[f"eval/{k}"] for k in expected]
    assert all(p.groupby.name == "variant" and p.groupby_rangefunc == "stddev" for p in bars.panels)
    assert [g.name for g in workspace.runset_settings.groupby] == ["model.name", "ablation.name"]
    assert "summary:eval/psnr" in workspace.runset_settings.pinned_columns
    assert samples.panels[0].media_keys == ["eval/samples"]


def test_publishing_a_folder_without_wandb_runs_says_so(tmp_path, capsys):
    from e2e import write_fake_runs

    write_fake_runs(tmp_path / "runs")
    assert cli.main([str(tmp_path / "runs"), "--publish-workspace"]) == 2


def _capturing(run):
    logged, artifacts = [], []
    real_log, real_artifact = run.log, run.log_artifact
    run.log = lambda payload, *a, **k: logged.append(payload) or real_log(payload, *a, **k)
    run.log_artifact = lambda artifact, *a, **k: artifacts.append(artifact) or real_artifact(artifact, *a, **k)
    return logged, artifacts


def test_per_image_thumbnails_goals_and_the_results_artifact(offline_env, tmp_path):
    import numpy as np
    import pandas as pd
    import wandb
    from lightning.pytorch.loggers import WandbLogger
    from PIL import Image

    from midms.tracking.loggers import finish, log_evaluation

    logger = WandbLogger(project="p", save_dir=str(tmp_path), mode="offline")
    run = logger.experiment
    logged, artifacts = _capturing(run)
    goals = []

    def define(key, summary=None, goal=None):  # a wandb whose define_metric takes a goal (0.31 dropped it)
        goals.append((key, summary, goal))

    run.define_metric = define
    samples = tmp_path / "samples"
    samples.mkdir()
    for i in range(2):
        Image.fromarray(np.full((128, 128, 3), 60 * i, np.uint8)).save(samples / f"test_{i:05d}.png")
    per_image = pd.DataFrame({"name": ["test_00000", "test_00001"], "psnr": [10.0, 12.0]})
    info = {"psnr": {"direction": "higher"}, "swd": {"direction": "lower"}}
    log_evaluation([logger], {"psnr": 11.0, "swd": 3.0}, per_image, None, {}, info, samples)
    assert goals == [("eval/psnr", "max", "maximize"), ("eval/swd", "min", "minimize")]
    table = logged[-1]["eval/per_image"]
    assert table.columns == ["name", "output", "psnr"]
    thumbs = [row[1] for row in table.data]
    assert all(isinstance(t, wandb.Image) and max(t.image.size) == 64 for t in thumbs)
    results = tmp_path / "results.json"
    results.write_text('{"status": "completed"}')
    finish([logger], "completed", results)
    (artifact,) = [a for a in artifacts if a.type == "results"]
    assert sorted(artifact.manifest.entries) == ["results.json"]


@pytest.mark.slow  # an end-to-end MIDMs training run: the fast set stays under 10 minutes
def test_training_logs_validation_curves_and_the_learning_rate(run_entry, tmp_path):
    """MIDMs (whose training is not a GAN's) logs val/psnr and val/l1 each epoch and its learning rate."""
    from e2e import MIDMS_TINY

    proc = run_entry(*TINY, *MIDMS_TINY, "model=midms", "logger=csv", "evaluate=false", "trainer.log_every_n_steps=1",
                     f"hydra.run.dir={tmp_path / 'job'}", timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pandas as pd

    curves = pd.read_csv(tmp_path / "job" / "csv" / "metrics.csv")
    assert {"val/psnr", "val/l1"} <= set(curves.columns)
    assert curves["val/psnr"].notna().sum() == 1  # one epoch, one validation
    lr = [c for c in curves.columns if c.startswith("lr-")]
    assert lr and curves[lr[0]].notna().sum() >= 2
