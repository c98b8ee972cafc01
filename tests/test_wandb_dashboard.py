"""The W&B side of comparing results: metric directions in run summaries, sample folders as artifacts, and a
saved workspace per benchmark (offline: its spec file)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from midms.tracking.loggers import log_evaluation
from midms.tracking.workspace import publish_workspace, workspace_spec


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")

    def make(log_model: bool) -> WandbLogger:
        return WandbLogger(project="p", save_dir=str(tmp_path), mode="offline", log_model=log_model)

    return make


def _samples(folder, n=2):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i:05d}.png")
    return folder


@pytest.mark.parametrize("log_model", [True, False])
def test_eval_metrics_keep_their_best_value_and_samples_go_with_the_model(offline_wandb, tmp_path, log_model):
    logger = offline_wandb(log_model)
    run = logger.experiment
    declared, artifacts = [], []
    real_define, real_log_artifact = run.define_metric, run.log_artifact
    run.define_metric = lambda key, **kw: declared.append((key, kw)) or real_define(key, **kw)
    run.log_artifact = lambda artifact, *a, **kw: artifacts.append(artifact) or real_log_artifact(artifact, *a, **kw)
    samples = _samples(tmp_path / "samples")
    values = {"psnr": 12.5, "swd": 100.0}
    info = {"psnr": {"direction": "higher", "headline": True}, "swd": {"direction": "lower", "headline": True}}
    log_evaluation([logger], values, pd.DataFrame(), None, {"num_images": 2}, info, samples)
    assert [(key, kw["summary"]) for key, kw in declared] == [("eval/psnr", "max"), ("eval/swd", "min")]
    summary_info = {k: dict(v) for k, v in dict(run.summary["eval_info/metric_info"]).items()}
    assert summary_info == info and run.summary["eval/psnr"] == 12.5
    if log_model:
        (artifact,) = artifacts
        assert artifact.type == "samples" and sorted(artifact.manifest.entries) == ["00000.png", "00001.png"]
    else:
        assert artifacts == []
    run.finish()


def test_offline_the_workspace_is_a_spec_file_and_nothing_is_sent(tmp_path, monkeypatch):
    import wandb_workspaces.workspaces as ws

    def no_network(self):
        raise AssertionError("tried to save a workspace offline")

    monkeypatch.setattr(ws.Workspace, "save", no_network)
    jobs = pd.DataFrame({"wandb_group": ["default", "default"], "psnr": [1.0, 2.0], "lpips_diversity": [0.1, 0.2]})
    info = {"psnr": {"direction": "higher", "headline": True, "unit": "dB"},
            "lpips_diversity": {"direction": "higher", "headline": False}}  # fmt: skip
    spec = workspace_spec("benchmark default", jobs, info)
    assert publish_workspace(spec, tmp_path, online=False) is None
    written = json.loads((tmp_path / "wandb_workspace.json").read_text())  # the file docs/benchmarks.md names
    assert written == spec and spec["groups"] == ["default"]
    assert [p["metric"] for p in spec["panels"]] == ["eval/psnr"]  # headline values only have panels
    assert spec["columns"] == ["summary:eval/lpips_diversity", "summary:eval/psnr"]  # every value in the table


@pytest.mark.slow  # an end-to-end run: the fast set stays under 10 minutes
def test_a_run_with_log_model_completes_offline_through_the_entry_point(run_entry, tmp_path):
    from e2e import TINY

    from midms.record import RunRecord

    model = ["model=copy_exemplar", "model.module._target_=tiny_models.TinyTrainable", "model.name=tiny"]
    proc = run_entry(*TINY, *model, "logger.wandb.log_model=true", f"hydra.run.dir={tmp_path / 'job'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = RunRecord.read(tmp_path / "job" / "results.json")
    assert record.status == "completed" and record.wandb_id
