"""What a job checks before it builds or trains anything, so that a mistake costs seconds, not a training run.

Each check raises :class:`~midms.errors.UserError` with one paragraph naming the file or setting and the fix:

- the cache folder (``paths.cache_dir``, ``$MIDMS_CACHE``) can be written: the prior, the reference images and the
  FID statistics go there, after training;
- W&B, when it will log online, can reach its server (``$WANDB_BASE_URL``, default api.wandb.ai): otherwise
  ``wandb.init`` fails or hangs after the data and the model are built;
- every metric's ``_target_`` builds;
- a checkpoint to start from is a readable PyTorch checkpoint of tensors (read as the trainer will read it).

Disk-full errors met later are turned into one paragraph naming the path by :func:`disk_full`.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import hydra
from omegaconf import DictConfig

from midms.errors import UserError
from midms.weights import load_checkpoint

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def check_cache_writable(cache_dir: str | Path) -> None:
    folder = Path(cache_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as e:
        raise UserError(
            f"The cache folder {folder} (paths.cache_dir, $MIDMS_CACHE) cannot be written ({e.strerror or e}): the "
            f"trained prior, the reference images and the FID statistics are kept there. Set MIDMS_CACHE to a "
            f"writable folder (or give this one write permission) and run again."
        ) from e


def check_wandb_reachable(cfg: DictConfig, timeout: float = 5.0) -> None:
    """When a W&B logger will run online, its server must answer a TCP connection."""
    from midms.tracking.loggers import wandb_mode

    conf = (cfg.get("logger") or {}).get("wandb")
    if conf is None or "WandbLogger" not in str(conf.get("_target_", "")):
        return
    mode = wandb_mode(conf.get("mode"))
    if mode != "online":
        return
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    parsed = urlparse(url if "//" in url else f"https://{url}")
    host, port = parsed.hostname or "api.wandb.ai", parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise UserError(
            f"W&B is set to log online (credentials found, or WANDB_MODE / logger.wandb.mode=online) but {host}:{port} "
            f"cannot be reached ({e}). Run offline, which keeps every run for `wandb sync` later: WANDB_MODE=offline "
            f"(or logger.wandb.mode=offline), or log to CSV only: logger=csv."
        ) from e


def check_metrics_build(cfg: DictConfig) -> None:
    for name, conf in (cfg.get("metrics") or {}).items():
        if conf is None or "_target_" not in conf:
            continue
        try:
            hydra.utils.get_class(conf._target_)
        except Exception as e:
            cause = e.__cause__ or e
            raise UserError(
                f"metrics.{name}: its _target_ {conf._target_!r} cannot be imported ({type(cause).__name__}: {cause})."
                f" Fix metrics.{name}._target_ (a class path, e.g. midms.metrics.pixel.PSNR), or drop the metric with "
                f"~metrics.{name}."
            ) from e


def check_checkpoint(path: str | None, what: str = "ckpt_path") -> None:
    if path:
        load_checkpoint(path, f"the checkpoint to start from ({what})")


def disk_full(error: BaseException) -> UserError | None:
    """A paragraph for an out-of-space error anywhere in ``error``'s chain (None for any other error)."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            where = seen.filename or "a file of this job"
            return UserError(
                f"No space left on the device while writing {where} ({seen.strerror}). Free space there (the cache "
                f"is $MIDMS_CACHE, the runs $MIDMS_LOGS), or point them at a larger disk, and run again "
                f"(resume=true continues a training run from its last checkpoint)."
            )
        seen = seen.__cause__ or seen.__context__
    return None
