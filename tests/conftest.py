"""Shared fixtures: run the real entry point in a subprocess with tiny settings and isolated folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent / "support"


@pytest.fixture
def one_thread():
    """Tiny convolutions run far faster single-threaded, above all on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        MIDMS_LOGS=str(tmp_path / "logs"),
        MIDMS_CACHE=str(tmp_path / "cache"),
        MIDMS_DATA=str(tmp_path / "data"),
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp_path / "wandb-home"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-home"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb-home"),
        HOME=str(tmp_path / "home"),  # no ~/.netrc: W&B must choose offline mode by itself
        PYTHONPATH=os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def run_entry(isolated_env: dict[str, str]):
    """Run ``python run.py <args>`` from the project root; returns the CompletedProcess."""

    def _run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(ROOT / "run.py"), *args]
        return subprocess.run(cmd, cwd=ROOT, env=isolated_env, capture_output=True, text=True, timeout=timeout)

    return _run


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub dir (where torchvision and lpips look for weights); any download fails the test."""

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub"


@pytest.fixture
def trust_weights(monkeypatch):
    """``trust(path)``: take a test-made file under an official name (``vgg19-dcbb9e9d.pth``) as the published
    one, by registering its SHA-256 for that name; the real files cannot be made here."""
    from midms import weights

    def trust(path: Path) -> None:
        monkeypatch.setitem(weights.KNOWN_SHA256, Path(path).name, weights.file_sha256(path))

    return trust
