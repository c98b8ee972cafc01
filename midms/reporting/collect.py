"""Every table of the suite starts here: one row per job, read from a folder of run records or from a W&B
project, with the same columns either way.

Columns: ``job`` (the run folder under the root, or the W&B run id), ``status`` (``completed``, ``failed``,
``running``, or ``interrupted`` for a job that died), ``model``, ``dataset``, ``ablation``, ``seed``,
``config_hash``, ``experiment``, ``started``, ``run_dir``, ``wandb_id``, ``wandb_group``, ``wandb_project``,
``wandb_entity``, ``error`` (its first line), ``skipped`` (``metric: reason; ...``), one column per metric
value, ``protocol.*``, ``files.*`` and ``metric_info.<key>.*`` (what each value's metric declared). Each
collector also returns the union of the records' ``metric_info``: per value key its direction (``higher`` /
``lower`` is better), whether it is a headline column, its stable minimum number of images and its
implementation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from midms.record import UNSTARTED_ERROR, RecordError, effective_status, iter_records, unstarted_jobs

#: W&B run states that mean the process is gone without recording an end
_DEAD_STATES = {"crashed", "killed", "failed"}


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}{k}.", v, out)
    else:
        out[prefix[:-1]] = value if not isinstance(value, list) else json.dumps(value)


def _job_name(folder: Path, root: Path) -> str:
    return str(folder.relative_to(root)) if folder != root else "."


#: the identity and status columns of a jobs table
JOB_COLUMNS = ("job", "run_dir", "model", "dataset", "ablation", "seed", "config_hash", "status", "experiment",
               "started", "wandb_id", "wandb_group", "wandb_project", "wandb_entity", "error")  # fmt: skip


def collect_jobs(root: str | Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Every job under ``root`` (a run, a sweep or a benchmark folder) and the metrics' declared info.

    An unreadable record and a Hydra job folder without one are failed rows saying so; a ``running`` job whose
    process is gone is ``interrupted``; a configuration run twice counts once (:func:`latest_per_job`).
    """
    root = Path(root)
    rows, info = [], {}
    for path, rec in iter_records(root):
        base = {"job": _job_name(path.parent, root), "run_dir": str(path.parent)}
        if isinstance(rec, RecordError):
            rows.append({**base, "status": "failed", "error": str(rec)})
            continue
        row = {**base, **{k: getattr(rec, k) for k in ("model", "dataset", "ablation", "seed", "config_hash")}}
        row.update(status=effective_status(rec, path.parent), experiment=rec.experiment, started=rec.started)
        row.update(wandb_id=rec.wandb_id, error=rec.error.splitlines()[0] if rec.error else None)
        row.update({f"wandb_{k}": (rec.wandb or {}).get(k) for k in ("group", "project", "entity")})
        row.update(rec.metrics)
        row["skipped"] = "; ".join(f"{k}: {v}" for k, v in rec.skipped.items()) or None
        _flatten("protocol.", rec.protocol, row)
        row.update({f"files.{k}": v for k, v in rec.files.items()})
        _flatten("metric_info.", rec.metric_info, row)
        info.update(rec.metric_info)
        rows.append(row)
    for folder in unstarted_jobs(root):
        job = {"job": _job_name(folder, root), "run_dir": str(folder)}
        rows.append({**job, "status": "failed", "error": UNSTARTED_ERROR})
    # every column the report reads exists, also when no record was readable (the rows are then all failures)
    jobs = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*JOB_COLUMNS, *(k for r in rows for k in r)])))
    return latest_per_job(jobs), info


def latest_per_job(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: a job re-run (``--force``, a retry after a failure) leaves its earlier folder
    behind; only the newest run of each ``config_hash`` counts, so no seed is counted twice."""
    if "config_hash" not in jobs or "started" not in jobs:
        return jobs
    keyed = jobs[jobs["config_hash"].notna()].sort_values("started", kind="stable", na_position="first")
    newest = keyed.drop_duplicates(subset="config_hash", keep="last")
    return pd.concat([newest, jobs[jobs["config_hash"].isna()]]).sort_index().reset_index(drop=True)


def collect_wandb(project: str, group: str | None = None, api=None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The same rows from a W&B project (``entity/project``) through the public API, and the metrics' info.

    Rows come from each run's config (model, dataset, ablation, seed) and summary (``eval/<metric>``,
    ``status``, ``eval_info/metric_info``); a run that crashed or was killed without recording its end is
    ``interrupted``. ``api`` is for tests; by default ``wandb.Api()``, which needs network access and a login.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": group} if group else {}
    rows, info = [], {}
    for run in api.runs(project, filters=filters):
        if run.job_type == "summary":
            continue
        cfg, summary = dict(run.config), dict(run.summary)
        status = summary.get("status") or ("interrupted" if run.state in _DEAD_STATES else run.state)
        row = {
            "job": run.id,
            "status": status,
            "model": (cfg.get("model") or {}).get("name"),
            "dataset": (cfg.get("dataset") or {}).get("name"),
            "ablation": (cfg.get("ablation") or {}).get("name"),
            "seed": cfg.get("seed"),
            "wandb_id": run.id,
            "wandb_group": run.group,
            "wandb_project": project.split("/")[-1],
            "wandb_entity": project.split("/")[0] if "/" in project else None,
        }
        row.update({k.removeprefix("eval/"): v for k, v in summary.items() if k.startswith("eval/")})
        run_info = {k: dict(v) for k, v in dict(summary.get("eval_info/metric_info") or {}).items()}
        _flatten("metric_info.", run_info, row)
        info.update(run_info)
        rows.append(row)
    return pd.DataFrame(rows), info
