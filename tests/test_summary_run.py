"""The benchmark's W&B summary run: the aggregate table and plots, offline without credentials."""

from __future__ import annotations

from e2e import write_fake_runs

from midms.benchmarking.__main__ import aggregate
from midms.tracking.summary import log_summary_run


def test_summary_run_logs_table_and_plots_offline(tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: offline by itself
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    runs = tmp_path / "runs"
    write_fake_runs(runs)
    out, _, _ = aggregate(runs, tmp_path / "agg", "tiny")
    run_id = log_summary_run("tiny", out)
    (offline,) = (out / "wandb").glob("offline-run-*")
    assert run_id and run_id in offline.name and list(offline.glob("*.wandb"))
    # nothing to log without a summary table
    assert log_summary_run("empty", tmp_path / "nothing") is None
