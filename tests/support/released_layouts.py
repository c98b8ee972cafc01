"""Random weights in an official released layout (``tests/support/<method>_released_layout.json``): the files a
strict load is tested with, without the official code or its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SUPPORT = Path(__file__).resolve().parent


def layout(name: str) -> dict[str, list[int]]:
    """The generator's tensor names and shapes, as the official code saves them (``G``)."""
    return json.loads((SUPPORT / f"{name}_released_layout.json").read_text())["G"]


def official_state(name: str, seed: int = 0, scale: float = 0.05) -> dict[str, torch.Tensor]:
    """Seeded values for every tensor of the layout: BatchNorm variances positive, counters small integers, and each
    residual block's PReLU equal under its two names (``relu`` and ``model.2``: one module saved twice)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name_, shape in layout(name).items():
        if name_.endswith("num_batches_tracked"):
            state[name_] = torch.tensor(3)
        elif name_.endswith("running_var"):
            state[name_] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name_] = torch.randn(shape, generator=g) * scale
    for name_ in state:
        twin = name_.replace("relu.weight", "model.2.weight")
        if name_.endswith("relu.weight") and twin in state:
            state[name_] = state[twin]
    return state


def write_release(name: str, folder: Path, seed: int = 0) -> Path:
    """``<folder>/latest_net_G.pth`` in the official layout; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "latest_net_G.pth"
    torch.save(official_state(name, seed, scale=0.02), path)
    return path
