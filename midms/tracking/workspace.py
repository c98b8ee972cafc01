"""The W&B side of "comparing results in W&B dashboards": a saved workspace for any sweep or benchmark.

:func:`workspace_spec` describes it as plain data, from the jobs table of a folder or a W&B project
(:mod:`midms.reporting.collect`): the runs of the sweep's W&B groups, grouped by model and ablation; one bar panel
per headline metric (mean over seeds, standard deviation as the range, direction and unit in the title, bars keyed
by ``variant`` = ``<model>/<ablation>``, which every run's config carries); the training and validation curves;
the sample grids side by side; and a runs table with every ``eval/*`` value pinned. :func:`publish_workspace`
writes that spec (``wandb_workspace.json``) and, when W&B is online, saves it through wandb-workspaces
(https://github.com/wandb/wandb-workspaces) and returns its URL. ``midms-report <folder> --publish-workspace``
does it for any sweep after ``wandb sync``; ``midms-benchmark`` does it for its matrix.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from midms.files import atomic_write_text

log = logging.getLogger(__name__)
SPEC_FILE = "wandb_workspace.json"
GROUP_BY = ["model.name", "ablation.name"]  # run-config keys (the resolved Hydra config)
BAR_KEY = "variant"  # run-config key "<model>/<ablation>": one bar per model and ablation
CURVES = ["train/loss", "train/g_loss", "val/psnr", "val/l1", "lr"]  # line panels (a prefix matches lr-*)
DEFAULT_PROJECT = "midms-bench"


def headline_metrics(info: dict[str, dict]) -> dict[str, dict]:
    """The headline values among the records' ``metric_info`` (direction, unit), in a stable order."""
    return {k: v for k, v in sorted(info.items()) if v.get("headline") and v.get("direction") in ("higher", "lower")}


def _one(values: pd.Series | None, fallback: str | None) -> str | None:
    found = sorted({str(v) for v in values.dropna()}) if values is not None else []
    return found[0] if found else fallback


def workspace_spec(name: str, jobs: pd.DataFrame, info: dict[str, dict]) -> dict[str, Any]:
    """The workspace of the runs in ``jobs`` (their W&B groups), with a panel per headline metric of ``info``."""
    groups = sorted({str(g) for g in jobs.get("wandb_group", pd.Series(dtype=object)).dropna()})
    if not groups:
        raise ValueError(
            f"none of the {len(jobs)} jobs has a W&B run (logger=wandb): there is nothing to put in a workspace"
        )
    metrics = headline_metrics(info)
    value_keys = [c for c in jobs.columns if c in info]
    panels = []
    for key, meta in metrics.items():
        unit = f", {meta['unit']}" if meta.get("unit") else ""
        title = f"{key} ({meta['direction']} is better{unit})"
        panels.append({"metric": f"eval/{key}", "title": title, "aggregate": "mean", "range": "stddev"})
    return {
        "entity": _one(jobs.get("wandb_entity"), os.environ.get("WANDB_ENTITY")),
        "project": _one(jobs.get("wandb_project"), os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT)),
        "name": name,
        "groups": groups,
        "group_by": list(GROUP_BY),
        "bar_key": BAR_KEY,
        "panels": panels,
        "curves": list(CURVES),
        "media": ["eval/samples"],
        "columns": [f"summary:eval/{k}" for k in sorted(value_keys)],
    }


def build_workspace(spec: dict[str, Any]):
    """The spec as a ``wandb_workspaces`` Workspace (built offline; saving it needs the W&B API)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    bars = [
        wr.BarPlot(
            title=p["title"],
            metrics=[p["metric"]],
            groupby=wr.Config(spec["bar_key"]),
            groupby_aggfunc=p["aggregate"],
            groupby_rangefunc=p["range"],
        )
        for p in spec["panels"]
    ]
    curves = [wr.LinePlot(title=key, x="Step", y=[key], groupby=wr.Config(spec["bar_key"])) for key in spec["curves"]]
    groups = spec["groups"]
    group_filter = ws.Metric("Group") == groups[0] if len(groups) == 1 else ws.Metric("Group").isin(groups)
    return ws.Workspace(
        entity=spec["entity"] or "",
        project=spec["project"],
        name=spec["name"],
        sections=[
            ws.Section(name="metrics (mean ± std over seeds)", panels=bars, is_open=True),
            ws.Section(name="training", panels=curves, is_open=False),
            ws.Section(name="samples", panels=[wr.MediaBrowser(media_keys=spec["media"])], is_open=True),
        ],
        runset_settings=ws.RunsetSettings(
            filters=[group_filter],
            groupby=[ws.Config(key) for key in spec["group_by"]],
            pinned_columns=list(spec["columns"]),
        ),
    )


def publish_workspace(spec: dict[str, Any], out_dir: str | Path, online: bool) -> str | None:
    """Write ``out_dir/wandb_workspace.json``; online, also save the workspace and return its URL."""
    path = Path(out_dir) / SPEC_FILE
    atomic_write_text(path, json.dumps(spec, indent=2) + "\n")
    if not online:
        log.info(
            "W&B offline: workspace spec written to %s. To save it: `wandb sync` the offline runs, `wandb login`, "
            "then `midms-report <folder> --publish-workspace`",
            path,
        )
        return None
    try:
        workspace = build_workspace(spec).save()
    except Exception as e:  # the tables are written; a dashboard that cannot be saved must not fail the caller
        log.warning("could not save the W&B workspace %r: %s (the spec is in %s)", spec["name"], e, path)
        return None
    log.info("W&B workspace: %s", workspace.url)
    return workspace.url
