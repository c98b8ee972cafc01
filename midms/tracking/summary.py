"""The summary run of a benchmark: one W&B run in the benchmark's group with the aggregate table and plots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from midms.tracking.loggers import wandb_mode

log = logging.getLogger(__name__)


def log_summary_run(name: str, out_dir: str | Path, project: str | None = None) -> str | None:
    """Log ``summary.csv`` (as a ``wandb.Table``) and ``plots/*.png``; returns the run id (None if nothing)."""
    out_dir = Path(out_dir)
    if not (out_dir / "summary.csv").exists():
        log.info("no summary table to log for benchmark %s", name)
        return None
    import wandb

    mode = wandb_mode(None)
    run = wandb.init(
        project=project or os.environ.get("WANDB_PROJECT", "midms-bench"),
        entity=os.environ.get("WANDB_ENTITY"),
        group=name,
        job_type="summary",
        name=f"{name}-summary",
        dir=str(out_dir),
        mode=mode,
        tags=["summary", f"benchmark:{name}"],
    )
    try:
        table = pd.read_csv(out_dir / "summary.csv")
        payload = {"summary/table": wandb.Table(dataframe=table)}
        for png in sorted((out_dir / "plots").glob("*.png")):
            payload[f"summary/{png.stem}"] = wandb.Image(str(png))
        run.log(payload)
        log.info("W&B summary run %s (%s mode) in group %s", run.id, mode, name)
        return run.id
    finally:
        run.finish()
