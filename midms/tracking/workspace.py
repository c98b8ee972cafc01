"""The W&B side of "comparing results in W&B dashboards": a saved workspace per benchmark.

:func:`workspace_spec` describes it as plain data: the benchmark's runs (its W&B group), grouped by model and
ablation, one bar panel per metric (mean over seeds, standard deviation as the range, the direction in the
title), and the sample grids side by side. :func:`publish_workspace` always writes that spec next to the
benchmark's tables (``wandb_workspace.json``) and, when W&B is online, saves it as a workspace view through
wandb-workspaces (https://github.com/wandb/wandb-workspaces), whose URL it returns.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from midms.files import atomic_write_text

log = logging.getLogger(__name__)
SPEC_FILE = "wandb_workspace.json"
GROUP_BY = ["model.name", "ablation.name"]  # run-config keys (the resolved Hydra config)


def workspace_spec(name: str, metrics: dict[str, str], project: str, entity: str | None) -> dict[str, Any]:
    """The workspace of benchmark ``name``; ``metrics`` maps each metric to ``higher`` or ``lower`` (is better)."""
    return {
        "entity": entity,
        "project": project,
        "name": f"benchmark {name}",
        "group": name,
        "group_by": list(GROUP_BY),
        "panels": [
            {"metric": f"eval/{m}", "title": f"{m} ({d} is better)", "aggregate": "mean", "range": "stddev"}
            for m, d in metrics.items()
        ],
        "media": ["eval/samples"],
    }


def build_workspace(spec: dict[str, Any]):
    """The spec as a ``wandb_workspaces`` Workspace (built offline; saving it needs the W&B API)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    bars = [
        wr.BarPlot(
            title=p["title"],
            metrics=[p["metric"]],
            groupby=wr.Config(spec["group_by"][0]),
            groupby_aggfunc=p["aggregate"],
            groupby_rangefunc=p["range"],
        )
        for p in spec["panels"]
    ]
    return ws.Workspace(
        entity=spec["entity"] or "",
        project=spec["project"],
        name=spec["name"],
        sections=[
            ws.Section(name="metrics (mean ± std over seeds)", panels=bars, is_open=True),
            ws.Section(name="samples", panels=[wr.MediaBrowser(media_keys=spec["media"])], is_open=True),
        ],
        runset_settings=ws.RunsetSettings(
            filters=[ws.Metric("Group") == spec["group"]],
            groupby=[ws.Config(key) for key in spec["group_by"]],
        ),
    )


def publish_workspace(name: str, metrics: dict[str, str], out_dir: str | Path, online: bool) -> str | None:
    """Write ``out_dir/wandb_workspace.json``; online, also save the workspace and return its URL."""
    project = os.environ.get("WANDB_PROJECT", "midms-bench")
    spec = workspace_spec(name, metrics, project, os.environ.get("WANDB_ENTITY"))
    atomic_write_text(Path(out_dir) / SPEC_FILE, json.dumps(spec, indent=2) + "\n")
    if not online:
        log.info("W&B offline: workspace spec written to %s (saved when run online)", Path(out_dir) / SPEC_FILE)
        return None
    try:
        workspace = build_workspace(spec).save()
    except Exception as e:  # the tables are written; a dashboard that cannot be saved must not fail the benchmark
        log.warning("could not save the W&B workspace of %s: %s", name, e)
        return None
    log.info("W&B workspace: %s", workspace.url)
    return workspace.url
