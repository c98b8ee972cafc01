"""The runner: one Hydra job, read top to bottom in :func:`run`.

checks -> seed -> datamodule -> model -> loggers -> (train) -> evaluate -> results.json -> objective.

It is the one place that wires data, models, evaluation and tracking together. Every job leaves a
``results.json`` in its output folder (:class:`~midms.job.JobRecord`), ``completed``, ``failed`` with the error
or ``interrupted``, so one failed job of a sweep is a row in the report and the other jobs still run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from midms import preflight, timing
from midms.console import single_console
from midms.data.build import build_datamodule
from midms.errors import UserError
from midms.evaluation.evaluator import evaluate
from midms.evaluation.metric_set import MetricSet
from midms.files import atomic_write_text
from midms.job import FAILED_JOBS, JobRecord, previous_record
from midms.metrics.base import EvalContext
from midms.presets import check_preset
from midms.provenance import config_hash, git_commit, hashed_config, package_versions
from midms.record import RunRecord, this_process
from midms.resume import JOB_CONFIG_FILE, config_changes_since, load_for_evaluation, refusal, resume_point
from midms.tracking import loggers as tracking
from midms.training.memory_format import as_after_training

log = logging.getLogger(__name__)
__all__ = ["FAILED_JOBS", "run"]


def check_config(cfg: DictConfig) -> None:
    """Config mistakes that Hydra cannot see: an ablation composed with a model it does not apply to."""
    applies_to = cfg.ablation.get("applies_to")
    if applies_to and cfg.model.name not in applies_to:
        raise UserError(
            f"ablation={cfg.ablation.name} applies to model={'|'.join(applies_to)}, not to model={cfg.model.name}. "
            f"Drop the ablation (ablation=none) or choose one of those models."
        )


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: the multirun folder's name in a sweep, else the experiment's name."""
    configured = cfg.logger.get("wandb", {}).get("group") if cfg.get("logger") else None
    if configured:
        return str(configured)
    try:
        hc = HydraConfig.get()
        if hc.mode is not None and hc.mode.name == "MULTIRUN":
            return Path(hc.sweep.dir).name
    except ValueError:  # not running under Hydra (e.g. called from a notebook)
        pass
    return str(cfg.get("name") or "default")


def eval_device(cfg: DictConfig) -> torch.device:
    wanted = cfg.evaluation.get("device", "auto")
    if wanted == "auto":
        use_gpu = torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto")
        return torch.device("cuda" if use_gpu else "cpu")
    return torch.device(wanted)


def build_metrics(cfg: DictConfig) -> dict[str, Any]:
    """The metrics of ``cfg.metrics``; a VGG metric with ``weights: domain`` gets the domain network of the run's
    training data (trained once per data and settings, cached; skipped where the data cannot teach one)."""
    metrics = {
        name: hydra.utils.instantiate(conf, name=name)
        for name, conf in (cfg.get("metrics") or {}).items()
        if conf is not None and "_target_" in conf
    }
    for metric in metrics.values():
        if hasattr(metric, "resolve_domain_network"):
            metric.resolve_domain_network(cfg.dataset, cfg.paths.cache_dir)
    return metrics


def metric_problems(cfg: DictConfig, metrics: dict[str, Any] | None = None) -> dict[str, str]:
    """Set the metrics up (weights found and loaded, nothing computed): ``{metric: reason}`` for each that would be
    skipped (absent weights) or fail (a wrong weight file). No data is read, so the dataset's key is provisional."""
    dataset_key, image_size = f"preflight-{cfg.dataset.name}", int(cfg.dataset.image_size)
    metric_set = MetricSet(build_metrics(cfg) if metrics is None else metrics, log_skips=False)
    metric_set.setup(
        EvalContext(
            samples_dir=Path(cfg.paths.output_dir) / "samples",
            reference_dir=Path(cfg.paths.cache_dir) / "reference" / dataset_key,
            cache_dir=Path(cfg.paths.cache_dir),
            dataset_key=dataset_key,
            image_size=image_size,
            image_format=cfg.evaluation.image_format,
            device=torch.device("cpu"),
        )
    )
    return {**metric_set.skipped, **metric_set.errors}


def preflight_metrics(problems: Mapping[str, str]) -> None:
    """Announce before training the metrics that will be skipped or fail (:func:`metric_problems`), so that they
    are known before hours of training, not after; logged as one warning."""
    if problems:
        log.warning(
            "before training: %d metric(s) will not be computed at evaluation; fix them now or drop them "
            "(~metrics.<name>):\n%s",
            len(problems),
            "\n".join(f"  {name}: {reason}" for name, reason in problems.items()),
        )


def resolved_hash(cfg: DictConfig) -> str:
    """The config hash, which resolves every interpolation: a value that breaks one is a user error here."""
    try:
        return config_hash(cfg)
    except OmegaConfBaseException as e:
        raise UserError(
            f"The config does not resolve: {str(e).strip()}. Check the override of that key (or the value it "
            f"interpolates, e.g. model.size selects model.sizes.<size>)."
        ) from e


def _value(cfg: DictConfig, key: str) -> Any:
    """``cfg.<key>`` for the record, or None when it does not resolve (the failure is recorded later)."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=False)
    except Exception:  # an interpolation error: the job fails inside the try block with the full message
        return None


def new_record(cfg: DictConfig, run_dir: Path, previous: RunRecord | None) -> RunRecord:
    """The ``running`` record of a job that starts (a resumed job keeps its first attempt's start)."""
    record = RunRecord(
        model=_value(cfg, "model.name"),
        dataset=_value(cfg, "dataset.name"),
        ablation=_value(cfg, "ablation.name"),
        experiment=_value(cfg, "name"),
        seed=_value(cfg, "seed"),
        run_dir=str(run_dir.resolve()),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **this_process(),
    )
    if cfg.get("resume") and previous is not None and previous.started:
        record.resumed = [*previous.resumed, record.started]
        record.started = previous.started
    return record


def check_job(cfg: DictConfig, record: RunRecord, metrics: MetricsOnce, changes: dict | None, first: str | None):
    """Everything that can be known wrong before the data and the model are built."""
    record.config_hash = resolved_hash(cfg)
    preflight.check_cache_writable(cfg.paths.cache_dir)
    preflight.check_wandb_reachable(cfg)
    preflight.check_metrics_build(cfg)
    if changes:
        record.resumed_with_changes = {"first_config_hash": first, "changes": changes}
        log.warning("resuming with %d config change(s) (resume_with_changes=true): %s", len(changes), changes)
    atomic_write_text(Path(cfg.paths.output_dir) / JOB_CONFIG_FILE, json.dumps(hashed_config(cfg), indent=1))
    check_config(cfg)
    check_preset(cfg, metrics.problems)


class MetricsOnce:
    """The job's metrics, built once from ``cfg.metrics``: the pre-flight check sets them up (weights found and
    loaded) and the evaluation scores with the same objects."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self._metrics: dict[str, Any] | None = None
        self._problems: dict[str, str] | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            self._metrics = build_metrics(self.cfg)
        return self._metrics

    def problems(self) -> dict[str, str]:
        if self._problems is None:
            self._problems = metric_problems(self.cfg, self.metrics)
        return self._problems


def fit(cfg: DictConfig, model, datamodule, ckpt_path: str | None, job: JobRecord, metrics: MetricsOnce):
    """Train when the model trains (``cfg.train``); returns the evaluation's shard and device."""
    shard, device = (0, 1), eval_device(cfg)
    if not cfg.train or not model.trains:
        if cfg.train:
            log.info("model %s has nothing to train; evaluating directly", cfg.model.name)
        elif ckpt_path and model.trains:  # evaluate a trained checkpoint, not the model as built
            load_for_evaluation(model, ckpt_path)
            as_after_training(model, cfg.get("callbacks"))
        return shard, device
    if cfg.evaluate:
        preflight_metrics(metrics.problems())
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer = hydra.utils.instantiate(cfg.trainer, logger=job.loggers or False, callbacks=callbacks)
    log.info("training %s on %s", cfg.model.name, cfg.dataset.name)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    job.record.train = {"seconds": time.perf_counter() - t0, "global_step": trainer.global_step}
    before_steps = dict(getattr(model, "stage_seconds", {}) or {})  # a prior, a loss network: shown apart
    job.record.times.update(before_steps)
    job.record.times["training"] = job.record.train["seconds"] - sum(before_steps.values())
    job.record.model_protocol.update(getattr(model, "protocol", {}) or {})  # what training added (e.g. a prior)
    if trainer.world_size > 1:  # DDP: every rank translates its share, rank zero scores and writes results
        shard, device = (trainer.global_rank, trainer.world_size), trainer.strategy.root_device
    return shard, device


def evaluate_job(cfg: DictConfig, model, datamodule, job: JobRecord, shard, device, metrics: MetricsOnce) -> float:
    """Evaluate, put the scores into the record and the loggers; returns the objective (NaN when absent)."""
    datamodule.exemplars_per_input = int(cfg.evaluation.get("exemplars_per_input", 1))
    dataset, run_dir, start = datamodule.eval_dataset, job.run_dir, time.perf_counter()
    scores = evaluate(model, datamodule.eval_dataloader(), metrics.metrics, run_dir, cfg.paths.cache_dir,
                      dataset.dataset_key, dataset.spec.image_size, cfg.evaluation.image_format, device, cfg.seed,
                      cfg.evaluation.grid_rows, shard)  # fmt: skip
    if scores is None:  # a rank other than zero: its share of the folder is written
        return math.nan
    record = job.record
    record.metrics, record.skipped, record.metric_errors = scores.metrics, scores.skipped, scores.errors
    record.metric_info = {key: info.to_dict() for key, info in scores.info.items()}
    record.protocol = {
        **datamodule.protocol(),
        "num_images": scores.num_images,
        "skipped_pairs": {"count": len(scores.skipped_pairs), "pairs": scores.skipped_pairs[:50]},
        "reference_fingerprint": scores.folder.reference_fingerprint,
        "image_format": cfg.evaluation.image_format,
        "seed": cfg.seed,
        "metrics": scores.protocol,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    record.eval_seconds = time.perf_counter() - start
    record.times.update(
        translation=scores.translation_seconds, scoring=record.eval_seconds - scores.translation_seconds
    )
    record.files = {  # absolute: a report or a notebook run from another folder finds them
        "samples": str((run_dir / "samples").resolve()),
        "eval": str((run_dir / "eval").resolve()),
        "reference": str(Path(scores.folder.reference_dir).resolve()),
    }
    scores.per_image.to_csv(run_dir / "per_image.csv", index=False)
    tracking.log_evaluation(job.loggers, scores.metrics, scores.per_image, scores.grid, record.protocol,
                            record.metric_info, run_dir / "samples")  # fmt: skip
    objective = scores.metrics.get(cfg.objective, math.nan)
    if math.isnan(objective):
        log.warning("objective metric %r was not computed (skipped or not configured)", cfg.objective)
    return objective


def report_times(job: JobRecord) -> None:
    """The job's time table: logged, in results.json (``times``) and in the W&B summary (``time/<stage>``)."""
    times = {k: round(float(v), 2) for k, v in job.record.times.items()}
    job.record.times = times
    log.info("where the time went:\n%s", timing.stage_table(times))
    tracking.log_summary(job.loggers, {f"time/{k}": v for k, v in times.items()})


def run(cfg: DictConfig) -> float:
    """Run one job; return the objective (``eval/<cfg.objective>``), NaN when the job failed or lacks it."""
    single_console()
    start, startup = time.perf_counter(), timing.startup_seconds()
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = previous_record(run_dir)
    changes = config_changes_since(cfg, run_dir, previous)
    if (why := refusal(cfg, run_dir, previous, changes)) is not None:  # before anything in the folder is touched
        log.error("%s", why)
        FAILED_JOBS.append(str(run_dir))
        return math.nan
    metrics = MetricsOnce(cfg)
    with JobRecord(run_dir, new_record(cfg, run_dir, previous)) as job:
        check_job(cfg, job.record, metrics, changes, previous.config_hash if previous else None)
        L.seed_everything(cfg.seed, workers=True)
        datamodule = build_datamodule(cfg.dataset)
        model = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
        ckpt_path, wandb_id = resume_point(cfg, run_dir, previous)
        tags = [f"model:{cfg.model.name}", f"dataset:{cfg.dataset.name}", f"ablation:{cfg.ablation.name}"]
        job_type = "train" if cfg.train and model.trains else "evaluate"
        job.loggers = tracking.build_loggers(cfg, sweep_group(cfg), tags, wandb_id=wandb_id, job_type=job_type)
        job.record.wandb = tracking.wandb_identity(job.loggers)
        job.write()  # the W&B id is known now: a resumed run reuses it
        job.record.model_protocol = dict(getattr(model, "protocol", {}) or {})  # e.g. which VGG weights
        job.record.times.update(startup=startup, setup=time.perf_counter() - start)
        if cfg.get("preset"):  # which published settings the run composed
            job.record.model_protocol["preset"] = str(cfg.preset.name)
        shard, device = fit(cfg, model, datamodule, ckpt_path, job, metrics)
        if cfg.evaluate:
            job.objective = evaluate_job(cfg, model, datamodule, job, shard, device, metrics)
        total = startup + time.perf_counter() - start
        job.record.times["other"] = total - sum(job.record.times.values())  # trainer set-up, records, logging
        job.record.times["total"] = total
        report_times(job)
        job.record.status = "completed"
    return job.objective
