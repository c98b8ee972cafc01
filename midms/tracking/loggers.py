"""Experiment tracking: one W&B run per Hydra job (offline unless W&B is configured), or CSV, or nothing.

A W&B run is named ``<model>-<dataset>-<ablation>-s<seed>``; its group is the sweep (the multirun folder's name)
or the experiment name; its ``job_type`` says which entry point made it (``train`` or ``evaluate`` from
``run.py``, ``benchmark`` from ``midms-benchmark``, ``summary`` for a benchmark's summary run); tags = model,
dataset, ablation; the run config is the resolved Hydra config plus ``variant`` (``<model>/<ablation>``, the
workspace's bar key). Values use stable keys (``train/...``, ``val/...``, ``lr-*``, ``eval/<metric>``).
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_configured() -> bool:
    """True when the user has W&B credentials (an API key in the environment or in ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators(os.environ.get("WANDB_BASE_URL", "api.wandb.ai").split("//")[-1])
        return auth is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str | None) -> str:
    """``logger.wandb.mode`` if set, else ``$WANDB_MODE``, else online with credentials and offline without."""
    mode = configured or os.environ.get("WANDB_MODE")
    if mode:
        return mode
    return "online" if wandb_configured() else "offline"


def run_name(cfg: DictConfig) -> str:
    """``<model>-<dataset>-<ablation>-s<seed>``: the W&B run name of a job."""
    return f"{cfg.model.name}-{cfg.dataset.name}-{cfg.ablation.name}-s{cfg.seed}"


def build_loggers(
    cfg: DictConfig, group: str, tags: list[str], wandb_id: str | None = None, job_type: str = "train"
) -> list[Logger]:
    """Instantiate the configured loggers; W&B gets the name, group, job type, tags, mode and the resolved config.

    ``wandb_id`` continues an earlier W&B run (a resumed job keeps its run); ``job_type`` is used unless the
    config sets ``logger.wandb.job_type``.
    """
    loggers: list[Logger] = []
    for name, conf in (cfg.get("logger") or {}).items():
        if conf is None or "_target_" not in conf:
            continue
        if "WandbLogger" in conf._target_:
            extra = OmegaConf.to_container(conf, resolve=True)
            assert isinstance(extra, dict)
            mode = wandb_mode(extra.pop("mode", None))
            # the mode goes to wandb.init (not Lightning's offline flag, which forbids log_model): an offline run
            # keeps its checkpoint and sample artifacts locally until `wandb sync`
            extra.update(mode=mode, group=extra.get("group") or group, tags=tags)
            extra.update(name=extra.get("name") or run_name(cfg), job_type=extra.get("job_type") or job_type)
            if wandb_id:
                extra.update(id=wandb_id, resume="allow")
            Path(extra["save_dir"]).mkdir(parents=True, exist_ok=True)
            logger = hydra.utils.instantiate(extra)
            log.info("W&B run %s (%s mode, %s) in group %r", extra["name"], mode, extra["job_type"], extra["group"])
        else:
            logger = hydra.utils.instantiate(conf)
        # the resolved config is the run config (kept out of instantiate: it holds _target_ nodes)
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        assert isinstance(config, dict)
        logger.log_hyperparams({**config, "variant": f"{cfg.model.name}/{cfg.ablation.name}"})
        log.debug("logger %s: %s", name, type(logger).__name__)
        loggers.append(logger)
    return loggers


def wandb_identity(loggers: list[Logger]) -> dict[str, str] | None:
    """``{"id", "dir", "name", "group", "project", "entity"}`` of the job's W&B run (a resumed job continues it;
    a workspace is built from its group), None without a W&B logger."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            identity = {"id": run.id, "dir": run.dir, "name": run.name, "group": run.group, "project": run.project}
            return {**identity, "entity": run.entity or None}
    return None


def per_image_table(per_image: pd.DataFrame, samples_dir: str | Path | None, thumbnail: int = 64):
    """The per-image values as a ``wandb.Table`` with each output as a thumbnail (at most ``thumbnail`` px)."""
    import wandb
    from PIL import Image

    table = per_image.copy()
    files = {p.stem: p for p in Path(samples_dir).iterdir()} if samples_dir and Path(samples_dir).is_dir() else {}
    if "name" in table and files:
        thumbs = []
        for name in table["name"]:
            path = files.get(str(name))
            if path is None:
                thumbs.append(None)
                continue
            with Image.open(path) as image:
                image.thumbnail((thumbnail, thumbnail))
                thumbs.append(wandb.Image(image.convert("RGB")))
        table.insert(1, "output", thumbs)
    return wandb.Table(dataframe=table)


def define_direction(run, key: str, higher: bool) -> None:
    """Declare ``key``'s better direction: the summary keeps the max (or min), and where the installed wandb still
    takes a ``goal`` (it was dropped from ``define_metric`` in later releases) the goal says so too."""
    import inspect

    options: dict[str, str] = {"summary": "max" if higher else "min"}
    if "goal" in inspect.signature(run.define_metric).parameters:
        options["goal"] = "maximize" if higher else "minimize"
    run.define_metric(key, **options)


def log_evaluation(
    loggers: list[Logger],
    values: dict[str, float],
    per_image: pd.DataFrame,
    grid: np.ndarray | None,
    summary: dict[str, Any],
    info: dict[str, dict] | None = None,
    samples_dir: str | Path | None = None,
) -> None:
    """Send evaluation values (``eval/<metric>``), the sample grid and the per-image table to each logger.

    On W&B each ``eval/<metric>`` is declared with its direction (:func:`define_direction`: the summary keeps the
    best value, max or min), so dashboards sort the right way; what each
    metric declared (``info``: the record's ``metric_info``) also goes into the summary
    (``eval_info/metric_info``) for :func:`midms.reporting.collect_wandb`. The per-image table carries a
    thumbnail of each output. With ``log_model`` on, the sample folder is logged as an artifact next to the
    checkpoints Lightning logs.
    """
    info = info or {}
    scalars = {f"eval/{k}": float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            run = logger.experiment
            for key in scalars:
                direction = info.get(key.removeprefix("eval/"), {}).get("direction")
                if direction in ("higher", "lower"):
                    define_direction(run, key, higher=direction == "higher")
            payload: dict[str, Any] = dict(scalars)
            if grid is not None:
                payload["eval/samples"] = wandb.Image(grid, caption="input | exemplar | output | reference")
            if not per_image.empty:
                payload["eval/per_image"] = per_image_table(per_image, samples_dir)
            run.log(payload)
            described = {f"eval_info/{k}": v for k, v in summary.items()}
            run.summary.update({**scalars, **described, "eval_info/metric_info": dict(info)})
            if getattr(logger, "_log_model", False) and samples_dir is not None and Path(samples_dir).is_dir():
                artifact = wandb.Artifact(f"samples-{run.id}", type="samples", metadata={"metrics": scalars})
                artifact.add_dir(str(samples_dir))
                run.log_artifact(artifact)
        elif isinstance(logger, CSVLogger):
            logger.log_metrics(scalars)
            logger.save()


def log_summary(loggers: list[Logger], values: dict[str, float]) -> None:
    """Put ``values`` into each W&B run's summary (a CSV logger gets them as metrics)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)
        elif isinstance(logger, CSVLogger):
            logger.log_metrics(values)
            logger.save()


def finish(loggers: list[Logger], status: str, results_file: str | Path | None = None) -> None:
    """Close every logger; a W&B run is finished here so a multirun never leaks runs between jobs.

    The job's final ``results.json`` goes to W&B as an artifact (type ``results``) first."""
    for logger in loggers:
        try:
            if isinstance(logger, WandbLogger):
                if logger._experiment is not None:  # never start a run just to finish it
                    run = logger.experiment
                    if results_file is not None and Path(results_file).is_file():
                        import wandb

                        artifact = wandb.Artifact(f"results-{run.id}", type="results", metadata={"status": status})
                        artifact.add_file(str(results_file))
                        run.log_artifact(artifact)
                    logger.experiment.summary["status"] = status
                    logger.experiment.finish(exit_code=0 if status == "completed" else 1)
            else:
                logger.finalize(status="success" if status == "completed" else "failed")
        except Exception:  # closing a logger must not hide the job's own outcome
            log.exception("could not close logger %s", type(logger).__name__)
