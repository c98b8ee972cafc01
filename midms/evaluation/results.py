"""``results.json``: written atomically, with the config hash and the environment that produced it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from midms.files import atomic_write_text

RESULTS_FILE = "results.json"
#: touched every HEARTBEAT_SECONDS while a job runs; a ``running`` record without a fresh one was interrupted
HEARTBEAT_FILE = ".heartbeat"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 10 * HEARTBEAT_SECONDS
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


def this_process() -> dict[str, Any]:
    """Who writes a ``running`` record: the process id and host, read back by :func:`effective_status`."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a killed child that its parent has not reaped yet is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def effective_status(results: dict[str, Any], run_dir: str | Path, now: float | None = None) -> str | None:
    """The recorded status, except that a ``running`` job that is no longer alive is ``interrupted``.

    Alive means: its heartbeat file was touched within :data:`STALE_AFTER_SECONDS` (the results file's own
    time when there is no heartbeat yet) and, on this host, its process still exists.
    """
    status = results.get("status")
    if status != "running":
        return status
    run_dir = Path(run_dir)
    same_host = results.get("host") == socket.gethostname() and results.get("pid") is not None
    if same_host and not _alive(int(results["pid"])):
        return "interrupted"
    beat = run_dir / HEARTBEAT_FILE
    if same_host and not beat.exists():  # alive, and from before its first heartbeat
        return "running"
    ref = beat if beat.exists() else run_dir / RESULTS_FILE
    try:
        age = (time.time() if now is None else now) - ref.stat().st_mtime
    except OSError:
        return "interrupted"
    # a stale heartbeat also catches a process id that a new, unrelated process has taken over
    return "running" if age < STALE_AFTER_SECONDS else "interrupted"


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


def unstarted_jobs(root: str | Path) -> list[Path]:
    """Hydra job folders (with ``.hydra/``) under ``root`` that hold no results file: jobs that stopped
    before the runner could record anything."""
    return sorted(p.parent for p in Path(root).rglob(".hydra") if p.is_dir() and not (p.parent / RESULTS_FILE).exists())


UNSTARTED_ERROR = (
    "no results.json: the job stopped before the runner started (a launcher error or a kill); "
    "its config is in .hydra/ and its log next to it"
)


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
