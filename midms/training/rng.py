"""Random number generator states in checkpoints, so that a resumed run draws what an uninterrupted one would.

Lightning restores weights, optimisers, schedulers and the loop position, but not the generators: a model
that draws noise, timesteps or exemplars (MIDMs' diffusion noise and interleaved step, the GAN baselines'
random choices) would continue with other draws than the run it resumes. :class:`RNGState` saves the
torch (CPU and CUDA), NumPy and Python states with every checkpoint, as plain containers and tensors (loadable
with ``torch.load(weights_only=True)``), and puts them back when training starts again, before the first batch
is read: the point at which the checkpoint was taken, whether at an epoch's end or after a step.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

KEY = "rng_states"


def capture() -> dict[str, Any]:
    """The generators' states as plain containers and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },  # fmt: skip
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


class RNGState(L.Callback):
    """Saves the generators with each checkpoint; restores them when training resumes from one."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[KEY] = capture()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._pending = checkpoint.get(KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
