"""Collect ``results.json`` files into one pandas table, and write it as CSV and Markdown.

Reporting reads results files only (DESIGN.md); it knows nothing of models or the runner.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from midms.files import atomic_write_text
from midms.record import UNSTARTED_ERROR, RecordError, effective_status, iter_records, unstarted_jobs

log = logging.getLogger(__name__)
ID_COLUMNS = ["job", "status", "model", "dataset", "ablation", "seed", "config_hash"]


def collect(root: str | Path) -> pd.DataFrame:
    """One row per job under ``root``: identity columns, every metric, skipped metrics and the error.

    An unreadable results file becomes a failed row saying so, never a crash of the report; a ``running`` job
    whose process is gone is ``interrupted``; a Hydra job folder without results is a failed row.
    """
    root = Path(root)
    rows = []
    for path, rec in iter_records(root):
        job = str(path.parent.relative_to(root)) if path.parent != root else "."
        if isinstance(rec, RecordError):
            rows.append({"job": job, "status": "failed", "error": str(rec)})
            continue
        row = {"job": job, **{k: getattr(rec, k) for k in ID_COLUMNS[1:]}}
        row["status"] = effective_status(rec, path.parent)
        row.update({k: rec.protocol.get(k) for k in ("input", "image_size", "num_images", "image_format")})
        row.update(rec.metrics)
        row["skipped"] = "; ".join(f"{k}: {v}" for k, v in rec.skipped.items()) or None
        row["error"] = rec.error.splitlines()[0] if rec.error else None
        rows.append(row)
    for folder in unstarted_jobs(root):
        job = str(folder.relative_to(root)) if folder != root else "."
        rows.append({"job": job, "status": "failed", "error": UNSTARTED_ERROR})
    return pd.DataFrame(rows)


def write_tables(df: pd.DataFrame, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    atomic_write_text(csv_path, df.to_csv(index=False))
    atomic_write_text(md_path, df.to_markdown(index=False, floatfmt=".4g") + "\n")
    return csv_path, md_path


def collect_wandb(project: str, group: str | None = None, api=None) -> pd.DataFrame:
    """The same table from a W&B project (``entity/project``) through the public API.

    Rows come from each run's config (model, dataset, ablation, seed) and summary (``eval/<metric>``,
    ``status``). ``api`` is for tests; by default ``wandb.Api()``, which needs network access and a login.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": group} if group else {}
    rows = []
    for run in api.runs(project, filters=filters):
        if run.job_type == "summary":
            continue
        cfg, summary = dict(run.config), dict(run.summary)
        row = {
            "job": run.id,
            "status": summary.get("status", run.state),
            "model": (cfg.get("model") or {}).get("name"),
            "dataset": (cfg.get("dataset") or {}).get("name"),
            "ablation": (cfg.get("ablation") or {}).get("name"),
            "seed": cfg.get("seed"),
            "group": run.group,
        }
        row.update({k.removeprefix("eval/"): v for k, v in summary.items() if k.startswith("eval/")})
        rows.append(row)
    return pd.DataFrame(rows)
