"""The runner: one Hydra job, read top to bottom.

seed -> datamodule -> model -> loggers -> trainer -> (train) -> evaluate -> results.json -> objective.

It is the one place that wires data, models, evaluation and tracking together (DESIGN.md). Every job
leaves a ``results.json`` in its output folder, ``completed`` or ``failed`` with the error, so one failed
job of a sweep is a row in the report and the other jobs still run.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from midms import interrupt, preflight
from midms.errors import UserError
from midms.evaluation.evaluator import evaluate
from midms.evaluation.metric_set import MetricSet
from midms.files import atomic_write_text
from midms.metrics.base import EvalContext
from midms.presets import check_preset
from midms.provenance import Heartbeat, config_changes, config_hash, git_commit, hashed_config, package_versions
from midms.record import RESULTS_FILE, RecordError, RunRecord, this_process
from midms.tracking import loggers as tracking

log = logging.getLogger(__name__)

#: run directories of the jobs of this process that failed; ``run.py`` turns them into the exit code
FAILED_JOBS: list[str] = []


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
    return {
        name: hydra.utils.instantiate(conf, name=name)
        for name, conf in (cfg.get("metrics") or {}).items()
        if conf is not None and "_target_" in conf
    }


def metric_problems(cfg: DictConfig) -> dict[str, str]:
    """Set the metrics up (weights found and loaded, nothing computed): ``{metric: reason}`` for each that would be
    skipped (absent weights) or fail (a wrong weight file). No data is read, so the dataset's key is provisional."""
    dataset_key, image_size = f"preflight-{cfg.dataset.name}", int(cfg.dataset.image_size)
    metric_set = MetricSet(build_metrics(cfg))
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


def _write(run_dir: Path, record: RunRecord) -> None:
    """Only the rank-zero process of a DDP job writes the record (the others share its folder)."""
    if rank_zero_only.rank == 0:
        record.write(run_dir / RESULTS_FILE)


def _previous(run_dir: Path) -> RunRecord | None:
    """The record an earlier attempt left in this folder (a resumed job continues its W&B run), if readable."""
    if not (run_dir / RESULTS_FILE).exists():
        return None
    try:
        return RunRecord.read(run_dir / RESULTS_FILE)
    except RecordError as e:
        log.warning("ignoring the earlier record: %s", e)
        return None


def checked_ckpt_path(path: str | None) -> str | None:
    """A local checkpoint to start from. Remote paths are refused: a checkpoint is only ever read from disk,
    and with ``weights_only`` loading (plain containers and tensors, no code)."""
    if path is None:
        return None
    if "://" in str(path):
        raise UserError(
            f"ckpt_path={path} is a remote address; checkpoints are read from local files only. "
            f"Download it yourself, check where it comes from, and pass the local path."
        )
    if not Path(path).is_file():
        raise UserError(f"ckpt_path={path} does not exist. Pass the path of a Lightning checkpoint (.ckpt).")
    return str(path)


def _no_checkpoint(run_dir: Path) -> str:
    return (
        f"resume=true but {run_dir / 'checkpoints' / 'last.ckpt'} does not exist. Resume a run in its own folder: "
        f"python run.py hydra.run.dir=<the interrupted run's folder> resume=true (with the same overrides)."
    )


#: the first attempt's resolved config (as hashed), beside results.json: what a resume is compared with
JOB_CONFIG_FILE = "job_config.json"


def _resume_changes(cfg: DictConfig, run_dir: Path, previous: RunRecord | None) -> dict[str, list] | None:
    """What ``resume=true`` would change in the interrupted job's config: None when nothing (or nothing known)."""
    if not cfg.get("resume") or previous is None or not previous.config_hash:
        return None
    try:
        now = hashed_config(cfg)
    except Exception:  # a config that does not resolve fails the job with its own message
        return None
    if config_hash(now) == previous.config_hash:
        return None
    saved = run_dir / JOB_CONFIG_FILE
    before = json.loads(saved.read_text()) if saved.exists() else None
    return config_changes(before, now) if before is not None else {"<config hash>": [previous.config_hash, "new"]}


def _changed_config_message(run_dir: Path, changes: dict[str, list]) -> str:
    shown = "; ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in list(changes.items())[:8])
    return (
        f"resume=true in {run_dir} with another config than the interrupted job's ({len(changes)} change(s): "
        f"{shown}). Its checkpoint was trained with the first config, so the record would claim settings the "
        f"model did not have. Resume with the same overrides, or add resume_with_changes=true to continue anyway "
        f"(the record then lists the changes and the first config's hash)."
    )


def _trains(cfg: DictConfig) -> bool:
    """Whether the job trains (so ``resume=true`` needs a checkpoint); True when the model class is unknown."""
    if not cfg.get("train"):
        return False
    try:
        return bool(getattr(hydra.utils.get_class(cfg.model.module._target_), "trains", True))
    except Exception:  # a config that does not resolve fails, with its message, when the job is built
        return True


def resume_point(cfg: DictConfig, run_dir: Path, previous: RunRecord | None) -> tuple[str | None, str | None]:
    """Checkpoint and W&B run id to continue from: ``resume=true`` in an interrupted run's folder.

    A job with nothing to train (``copy_exemplar``, ``train=false``) has no checkpoint: it evaluates again,
    which gives the same numbers (the evaluation is seeded)."""
    wandb_id = previous.wandb_id if cfg.get("resume") and previous is not None else None
    if not cfg.get("resume") or not _trains(cfg):
        return checked_ckpt_path(cfg.get("ckpt_path")), wandb_id
    last = run_dir / "checkpoints" / "last.ckpt"  # checked by run(): absent only after a stop before the first one
    return (str(intact_checkpoint(last)) if last.exists() else None), wandb_id


def intact_checkpoint(last: Path) -> Path:
    """``last`` when it reads, else the newest other checkpoint of its folder that does (with a warning)."""
    others = sorted((p for p in last.parent.glob("*.ckpt") if p != last), key=lambda p: p.stat().st_mtime, reverse=True)
    problems = []
    for path in [last, *others]:
        try:
            preflight.check_checkpoint(str(path), "resume")
        except UserError as e:
            problems.append(str(e))
            continue
        if path != last:
            log.warning("%s cannot be read (%s); resuming from %s, the newest checkpoint that can", last,
                        problems[0], path)  # fmt: skip
        log.info("resuming from %s", path)
        return path
    raise UserError(
        f"resume=true, but no checkpoint in {last.parent} can be read: {' | '.join(problems[:3])}. Start the job "
        f"again without resume=true (or in another folder)."
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


def _user_error(e: BaseException) -> UserError | None:
    """The UserError behind ``e``, also when Hydra's instantiate wrapped it, else None."""
    while e is not None:
        if isinstance(e, UserError):
            return e
        e = e.__cause__ if isinstance(e, InstantiationException) else None
    return None


def run(cfg: DictConfig) -> float:
    """Run one job; return the objective (``eval/<cfg.objective>``), NaN when the job failed or lacks it."""
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous(run_dir)
    if cfg.get("resume") and _trains(cfg) and not (run_dir / "checkpoints" / "last.ckpt").exists():
        if previous is not None and previous.status == "interrupted":  # stopped before its first checkpoint
            log.info("the interrupted job stopped before its first checkpoint: it starts again from the beginning")
        else:  # nothing to resume from: say so and leave the folder (and the earlier attempt's record) as it is
            log.error("%s", _no_checkpoint(run_dir))
            FAILED_JOBS.append(str(run_dir))
            return math.nan
    record = RunRecord(
        model=_value(cfg, "model.name"),
        dataset=_value(cfg, "dataset.name"),
        ablation=_value(cfg, "ablation.name"),
        experiment=_value(cfg, "name"),
        seed=_value(cfg, "seed"),
        run_dir=str(run_dir),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **this_process(),
    )
    changes = _resume_changes(cfg, run_dir, previous)
    if changes and not cfg.get("resume_with_changes"):  # refused before anything in the folder is touched
        log.error("%s", _changed_config_message(run_dir, changes))
        FAILED_JOBS.append(str(run_dir))
        return math.nan
    if cfg.get("resume") and previous is not None and previous.started:  # the job's start is its first attempt's
        record.resumed = [*previous.resumed, record.started]
        record.started = previous.started
    _write(run_dir, record)
    loggers: list = []
    objective = math.nan
    heartbeat = Heartbeat(run_dir).start()
    restore_sigterm = interrupt.install()
    try:
        record.config_hash = resolved_hash(cfg)
        preflight.check_cache_writable(cfg.paths.cache_dir)
        preflight.check_wandb_reachable(cfg)
        preflight.check_metrics_build(cfg)
        if changes:
            record.resumed_with_changes = {"first_config_hash": previous.config_hash, "changes": changes}
            log.warning("resuming with %d config change(s) (resume_with_changes=true): %s", len(changes), changes)
        atomic_write_text(run_dir / JOB_CONFIG_FILE, json.dumps(hashed_config(cfg), indent=1))
        check_config(cfg)
        metric_check = functools.cache(lambda: metric_problems(cfg))  # the weights are loaded once, not per check
        check_preset(cfg, metric_check)
        L.seed_everything(cfg.seed, workers=True)

        datamodule = hydra.utils.instantiate(cfg.dataset.datamodule)
        model = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
        tags = [f"model:{cfg.model.name}", f"dataset:{cfg.dataset.name}", f"ablation:{cfg.ablation.name}"]
        ckpt_path, wandb_id = resume_point(cfg, run_dir, previous)
        if not cfg.get("resume"):
            preflight.check_checkpoint(ckpt_path)
        loggers = tracking.build_loggers(cfg, group=sweep_group(cfg), tags=tags, wandb_id=wandb_id)
        for logger in loggers:
            if isinstance(logger, tracking.WandbLogger):
                record.wandb = {"id": logger.experiment.id, "dir": logger.experiment.dir}
        _write(run_dir, record)  # the W&B id is known now: a resumed run reuses it

        record.model_protocol = dict(getattr(model, "protocol", {}) or {})  # e.g. which VGG weights
        if cfg.get("preset"):  # which published settings the run composed
            record.model_protocol["preset"] = str(cfg.preset.name)
        shard, device = (0, 1), eval_device(cfg)
        if cfg.train and model.trains:
            if cfg.evaluate:
                preflight_metrics(metric_check())
            callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
            trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
            log.info("training %s on %s", cfg.model.name, cfg.dataset.name)
            t0 = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            record.train = {"seconds": time.perf_counter() - t0, "global_step": trainer.global_step}
            record.model_protocol.update(getattr(model, "protocol", {}) or {})  # what training added (e.g. a prior)
            if trainer.world_size > 1:  # DDP: every rank translates its share, rank zero scores and writes results
                shard, device = (trainer.global_rank, trainer.world_size), trainer.strategy.root_device
        elif cfg.train:
            log.info("model %s has nothing to train; evaluating directly", cfg.model.name)

        if cfg.evaluate:
            datamodule.exemplars_per_input = int(cfg.evaluation.get("exemplars_per_input", 1))
            dataset = datamodule.eval_dataset
            outcome = evaluate(
                model,
                datamodule.eval_dataloader(),
                build_metrics(cfg),
                run_dir=run_dir,
                cache_dir=cfg.paths.cache_dir,
                dataset_key=dataset.dataset_key,
                image_size=dataset.spec.image_size,
                image_format=cfg.evaluation.image_format,
                device=device,
                seed=cfg.seed,
                grid_rows=cfg.evaluation.grid_rows,
                shard=shard,
            )
            if outcome is None:  # a rank other than zero: its samples are written
                record.status = "completed"
                return objective
            record.metrics, record.directions = outcome.metrics, outcome.directions
            record.skipped, record.metric_errors = outcome.skipped, outcome.metric_errors
            record.protocol = {
                **datamodule.protocol(),
                "num_images": outcome.num_images,
                "skipped_pairs": {"count": len(outcome.skipped_pairs), "pairs": outcome.skipped_pairs[:50]},
                "reference_fingerprint": outcome.reference_fingerprint,
                "image_format": cfg.evaluation.image_format,
                "seed": cfg.seed,
                "metrics": outcome.metric_protocol,
                "git_commit": git_commit(),
                "packages": package_versions(),
            }
            record.eval_seconds = outcome.seconds
            record.files = {"samples": str(run_dir / "samples"), "reference": str(outcome.reference_dir)}
            outcome.per_image.to_csv(run_dir / "per_image.csv", index=False)
            tracking.log_evaluation(loggers, outcome.metrics, outcome.per_image, outcome.grid, record.protocol,
                                    outcome.directions, run_dir / "samples")  # fmt: skip
            objective = outcome.metrics.get(cfg.objective, math.nan)
            if math.isnan(objective):
                log.warning("objective metric %r was not computed (skipped or not configured)", cfg.objective)
        record.status = "completed"
        return objective
    except (interrupt.JobInterrupted, SystemExit) as e:  # SystemExit: Lightning's own stop after SIGTERM
        if not (isinstance(e, interrupt.JobInterrupted) or interrupt.requested()):
            raise
        record.status = "interrupted"
        resume = f"python run.py <same overrides> hydra.run.dir={run_dir} resume=true"
        record.error = f"{e or 'stopped by SIGTERM'}. Continue it: {resume}"
        log.warning("%s", record.error)
    except Exception as e:
        user_error = _user_error(e) or preflight.disk_full(e)
        record.status = "failed"
        if user_error is not None:  # a user mistake: the message says what to change; no traceback
            record.error = str(user_error)
            log.error("%s", user_error)
        else:
            record.error, record.traceback = f"{type(e).__name__}: {e}", traceback.format_exc()
            log.exception("job failed")
    finally:
        heartbeat.stop()
        restore_sigterm()
        record.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write(run_dir, record)
        tracking.finish(loggers, record.status)
        if record.status in ("failed", "interrupted"):
            FAILED_JOBS.append(str(run_dir))
        else:
            log.info("results: %s", {k: round(v, 4) for k, v in record.metrics.items()})
    return objective
