"""Random weights in an official released layout (``tests/support/<method>_released_layout.json``): the files a
strict load is tested with, without the official code or its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SUPPORT = Path(__file__).resolve().parent


def layout(name: str, network: str = "G") -> dict[str, list[int]]:
    """A network's tensor names and shapes, as the official code saves them (``G``; CoCosNet v2's ``Corr`` too)."""
    return json.loads((SUPPORT / f"{name}_released_layout.json").read_text())[network]


def official_state(name: str, seed: int = 0, scale: float = 0.05, network: str = "G") -> dict[str, torch.Tensor]:
    """Seeded values for every tensor of the layout: BatchNorm variances positive, counters small integers, and each
    residual block's PReLU equal under its two names (``relu`` and ``model.2``: one module saved twice)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name_, shape in layout(name, network).items():
        if name_.endswith("num_batches_tracked"):
            state[name_] = torch.tensor(3)
        elif name_.endswith("running_var"):
            state[name_] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name_] = torch.randn(shape, generator=g) * scale
    for name_ in state:  # the PReLU is model.2 in DynaST's and MATEBIT's blocks, model.3 in CoCosNet v2's (a pad first)
        for twin in (name_.replace("relu.weight", "model.2.weight"), name_.replace("relu.weight", "model.3.weight")):
            if name_.endswith("relu.weight") and twin in state and state[twin].shape == state[name_].shape:
                state[name_] = state[twin]
    return state


def write_release(name: str, folder: Path, seed: int = 0) -> Path:
    """``<folder>/latest_net_G.pth`` (and ``latest_net_Corr.pth`` where the layout has one) in the official layout;
    returns the generator's path."""
    folder.mkdir(parents=True, exist_ok=True)
    networks = json.loads((SUPPORT / f"{name}_released_layout.json").read_text())
    for network in (n for n in networks if not n.startswith("_")):
        torch.save(official_state(name, seed, scale=0.02, network=network), folder / f"latest_net_{network}.pth")
    return folder / "latest_net_G.pth"
