"""Training-step time of the tiny MIDMs networks in the channels-last (NHWC) layout against NCHW.

    python benchmarks/perf_training_step.py [--repeats 3] [--steps 6]

What ``callbacks.memory_format`` (``midms.training.memory_format.ChannelsLast``, on by default) buys: the
time of one optimiser step of the prior stage's autoencoder (batch 16, 64 px) and of one MIDMs warm-up step
(batch 16 synthetic pairs at 64 px, the quickstart's networks), each built once and measured in turns,
contiguous then channels-last, ``--repeats`` times ``--steps`` steps after a warm-up step; the median of
each. The baseline is the contiguous layout in the same run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from midms.training.memory_format import channels_last  # noqa: E402


def _midms(image_size: int):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from torch.utils.data import default_collate

    from midms.data.synthetic import SyntheticPairs

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"dataset.image_size={image_size}"])
    ds = SyntheticPairs("train", image_size, sizes={"train": 16})
    torch.manual_seed(0)
    model = instantiate(cfg.model.module, data_spec=ds.spec)
    return model, default_collate([ds[i] for i in range(16)])


def _timed(step, steps: int) -> float:
    step()  # warm-up: oneDNN picks and caches its kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def _steps(model, batch: dict) -> dict[str, Any]:
    """(autoencoder step, MIDMs warm-up step) closures for ``model`` and ``batch`` as given (layout included)."""
    vae = copy.deepcopy(model.prior.vae).train().requires_grad_(True)  # the model's own stays frozen, as in warm-up
    ae_opt = torch.optim.Adam(vae.parameters(), lr=1e-4)
    images = batch["image"]

    def ae_step() -> None:
        loss = F.mse_loss(vae.decode(vae.encode(images).latents).sample, images)
        ae_opt.zero_grad()
        loss.backward()
        ae_opt.step()

    model._set_trainable("warmup")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def warmup_step() -> None:
        loss = sum(model.midms_losses(batch, "warmup").values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return {"autoencoder": ae_step, "warmup": warmup_step}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--image-size", type=int, default=64)
    args = p.parse_args(argv)
    model, batch = _midms(args.image_size)
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    layouts = {"contiguous": _steps(model, batch), "channels_last": _steps(nhwc, channels_last(dict(batch)))}
    times: dict[str, dict[str, list[float]]] = {
        name: {"contiguous": [], "channels_last": []} for name in layouts["contiguous"]
    }
    for _ in range(args.repeats):  # in turns, so that a drift of the machine's speed hits both layouts
        for layout, steps in layouts.items():
            for name, step in steps.items():
                times[name][layout].append(_timed(step, args.steps))
    result: dict[str, Any] = {"image_size": args.image_size, "batch": 16}
    for name, by_layout in times.items():
        base, nhwc_s = statistics.median(by_layout["contiguous"]), statistics.median(by_layout["channels_last"])
        result[name] = {"contiguous_s": base, "channels_last_s": nhwc_s, "speedup": base / nhwc_s}
        print(f"{name} step, batch 16 at {args.image_size} px: contiguous {base * 1e3:.0f} ms, "
              f"channels-last {nhwc_s * 1e3:.0f} ms ({base / nhwc_s:.2f}x)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
