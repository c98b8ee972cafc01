"""Where a run's numbers come from: the config hash, the code's commit, the package versions, and the
heartbeat that tells a live job from a dead one. The run record (:mod:`midms.record`) stores them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import threading
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from midms.record import HEARTBEAT_FILE, HEARTBEAT_SECONDS

TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "torchmetrics",
    "clean-fid",
    "lpips",
    "diffusers",
)
# config sections that say where things go or how they are logged, not what is computed
UNHASHED_KEYS = ("paths", "logger", "hydra", "callbacks", "resume", "resume_with_changes", "ckpt_path")


class Heartbeat:
    """Touches ``<run_dir>/.heartbeat`` from a daemon thread while the ``with`` block runs."""

    def __init__(self, run_dir: str | Path, every: float = HEARTBEAT_SECONDS) -> None:
        self.path, self.every = Path(run_dir) / HEARTBEAT_FILE, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="midms-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(OSError):  # a missing heartbeat only makes the report call it interrupted
                self.path.touch()
            if self._stop.wait(self.every):
                return

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def hashed_config(cfg: DictConfig) -> dict:
    """The resolved config as :func:`config_hash` hashes it: paths as placeholders, no logger or launch keys."""
    cfg = cfg.copy()
    with open_dict(cfg):  # paths are placeholders: values interpolated from them must not change the hash
        cfg.paths = {key: f"<paths.{key}>" for key in cfg.get("paths", {})}
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    for key in UNHASHED_KEYS:
        container.pop(key, None)
    return json.loads(json.dumps(container, sort_keys=True, default=str))


def config_hash(cfg: DictConfig | dict) -> str:
    """A short hash of the resolved config, without output paths and logger settings.

    Two jobs with the same hash compute the same thing (the benchmark uses it to skip finished jobs).
    """
    container = hashed_config(cfg) if isinstance(cfg, DictConfig) else cfg
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_changes(before: dict, after: dict, prefix: str = "") -> dict[str, list]:
    """``{dotted key: [before, after]}`` for every leaf that differs (a key absent on one side: None there)."""
    changes: dict[str, list] = {}
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes.update(config_changes(a, b, f"{name}."))
        elif a != b:
            changes[name] = [a, b]
    return changes


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the code that ran (with ``-dirty`` when the tree has changes), or None outside git."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
