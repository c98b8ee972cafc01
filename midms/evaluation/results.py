"""``results.json``: written atomically, with the config hash and the environment that produced it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

RESULTS_FILE = "results.json"
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
UNHASHED_KEYS = ("paths", "logger", "hydra", "callbacks", "resume", "ckpt_path")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """NaN and infinities become ``None`` so the file stays valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_results(path: str | Path, results: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_jsonable(results), indent=2, sort_keys=False, default=str) + "\n")


def read_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def config_hash(cfg: DictConfig) -> str:
    """A short hash of the resolved config, without output paths and logger settings.

    Two jobs with the same hash compute the same thing (the benchmark uses it to skip finished jobs).
    """
    cfg = cfg.copy()
    with open_dict(cfg):  # paths are placeholders: values interpolated from them must not change the hash
        cfg.paths = {key: f"<paths.{key}>" for key in cfg.get("paths", {})}
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    for key in UNHASHED_KEYS:
        container.pop(key, None)
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
