"""Where a job continues from: ``resume=true`` in an interrupted run's folder, or ``ckpt_path``.

A resume is refused before anything in the folder is touched when there is nothing to continue from or when
the config differs from the interrupted job's (unless ``resume_with_changes=true``, which the record lists).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from midms import preflight
from midms.errors import UserError
from midms.provenance import config_changes, config_hash, hashed_config
from midms.record import RunRecord

log = logging.getLogger(__name__)

#: the first attempt's resolved config (as hashed), beside results.json: what a resume is compared with
JOB_CONFIG_FILE = "job_config.json"


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


#: state-dict prefixes of the training losses' networks, which a model built for evaluation does not have
LOSS_NETWORK_PREFIXES = ("vgg.",)


def load_for_evaluation(model, path: str) -> None:
    """Load a training checkpoint's weights into ``model`` to evaluate them (``train=false ckpt_path=...``).

    Every tensor of the model must be in the checkpoint with its shape; the checkpoint may hold more only for
    the training losses' networks (not built with ``train=false``). Anything else is an error naming the keys.
    """
    from midms.weights import load_checkpoint

    checkpoint = load_checkpoint(path, "a Lightning checkpoint (ckpt_path)")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"ckpt_path={path} is not a Lightning checkpoint (it has no 'state_dict').")
    state, own = checkpoint["state_dict"], model.state_dict()
    missing = sorted(k for k in own if k not in state)
    extra = sorted(k for k in state if k not in own and not k.startswith(LOSS_NETWORK_PREFIXES))
    shapes = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or extra or shapes:
        raise UserError(
            f"ckpt_path={path} does not fit model={type(model).__name__} as configured: missing {missing[:5]}, "
            f"unexpected {extra[:5]}, other shapes {shapes[:5]}. Evaluate it with the overrides it was trained with "
            "(its run folder's .hydra/overrides.yaml)."
        )
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    log.info("evaluating the weights of %s", path)


def trains(cfg: DictConfig) -> bool:
    """Whether the job trains (so ``resume=true`` needs a checkpoint); True when the model class is unknown."""
    if not cfg.get("train"):
        return False
    try:
        return bool(getattr(hydra.utils.get_class(cfg.model.module._target_), "trains", True))
    except Exception:  # a config that does not resolve fails, with its message, when the job is built
        return True


def config_changes_since(cfg: DictConfig, run_dir: Path, previous: RunRecord | None) -> dict[str, list] | None:
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


def refusal(cfg: DictConfig, run_dir: Path, previous: RunRecord | None, changes: dict | None) -> str | None:
    """Why ``resume=true`` cannot go on in ``run_dir`` (None when it can, or when the job does not resume)."""
    if cfg.get("resume") and trains(cfg) and not (run_dir / "checkpoints" / "last.ckpt").exists():
        if previous is not None and previous.status == "interrupted":  # stopped before its first checkpoint
            log.info("the interrupted job stopped before its first checkpoint: it starts again from the beginning")
        else:
            return (
                f"resume=true but {run_dir / 'checkpoints' / 'last.ckpt'} does not exist. Resume a run in its own "
                f"folder: python run.py hydra.run.dir=<the interrupted run's folder> resume=true (with the same "
                f"overrides)."
            )
    if changes and not cfg.get("resume_with_changes"):
        shown = "; ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in list(changes.items())[:8])
        return (
            f"resume=true in {run_dir} with another config than the interrupted job's ({len(changes)} change(s): "
            f"{shown}). Its checkpoint was trained with the first config, so the record would claim settings the "
            f"model did not have. Resume with the same overrides, or add resume_with_changes=true to continue "
            f"anyway (the record then lists the changes and the first config's hash)."
        )
    return None


def resume_point(cfg: DictConfig, run_dir: Path, previous: RunRecord | None) -> tuple[str | None, str | None]:
    """Checkpoint and W&B run id to continue from: ``resume=true`` in an interrupted run's folder.

    A job with nothing to train (``copy_exemplar``, ``train=false``) has no checkpoint: it evaluates again,
    which gives the same numbers (the evaluation is seeded)."""
    wandb_id = previous.wandb_id if cfg.get("resume") and previous is not None else None
    if not cfg.get("resume") or not trains(cfg):
        path = checked_ckpt_path(cfg.get("ckpt_path"))
        preflight.check_checkpoint(path)
        return path, wandb_id
    last = run_dir / "checkpoints" / "last.ckpt"  # checked by refusal(): absent only after a stop before the first
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
