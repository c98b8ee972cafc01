"""`make gpu-smoke`: one paper-size training step of each model and one evaluation batch, fp32 and bf16, on CUDA.

    python -m benchmarks.gpu_smoke                              # CUDA, paper sizes, 256 px, batch 4
    python -m benchmarks.gpu_smoke --device cpu --size tiny --image-size 64 --batch 2   # the code path, on a CPU

For each model (CoCosNet, MIDMs) and precision: the model built as ``model.size`` composes it, with random
weights everywhere (the prior, the VGG19 of the losses: throughput does not depend on the values, and nothing
is downloaded), one warm-up step, then one timed training step (``training_step`` on the second batch of a
Lightning fit, timed by a callback; MIDMs in its end-to-end phase: the interleaved DDIM steps and re-matching)
and one timed ``translate`` of a batch. Printed: images/s of each and the peak memory (CUDA:
``max_memory_allocated``; CPU: the process's peak RSS). The table is also written to
``benchmarks/results/perf/gpu_smoke_<time>.md``. Without a CUDA device and ``--device cuda`` it says so and exits
with status 2: CI does not run it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import device_peak_mib, device_sync, timed_second_call  # noqa: E402
from midms.data.build import build_datamodule  # noqa: E402
from midms.files import atomic_write_text  # noqa: E402

log = logging.getLogger("gpu_smoke")
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


def _compose(model: str, size: str, image_size: int, batch: int):
    from hydra import compose, initialize_config_dir

    from midms.resources import conf_dir

    overrides = [
        "paths.output_dir=/tmp/unused",
        f"model={model}",
        "dataset=synthetic",
        f"dataset.image_size={image_size}",
        f"dataset.sizes.train={4 * batch}",
        f"dataset.datamodule.batch_size={batch}",
        f"model.size={size}",
    ]
    if model == "midms":  # random weights, the end-to-end phase from the first step
        overrides += [
            f"model.sizes.{size}.prior.source=random",
            f"model.sizes.{size}.prior.train=false",
            f"model.sizes.{size}.vgg.weights=null",
            f"model.sizes.{size}.training.warmup_iter=0",
        ]
    else:
        overrides += [f"model.sizes.{size}.vgg_weights=random", f"model.sizes.{size}.vgg_widths=[64,128,256,512,512]"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=overrides)


def measure(model_name: str, precision: str, args: argparse.Namespace) -> dict:
    import hydra
    import lightning as L

    device = torch.device(args.device)
    cfg = _compose(model_name, args.size, args.image_size, args.batch)
    datamodule = build_datamodule(cfg.dataset)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    class BatchTimer(L.Callback):
        """Seconds of each training batch (forward, backward and the optimiser steps), device synchronised."""

        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            device_sync(device)
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            device_sync(device)
            self.seconds.append(time.perf_counter() - self.start)

    timer = BatchTimer()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=PRECISIONS[precision], max_epochs=1, logger=False,
        limit_train_batches=2, limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    step_seconds = timer.seconds[-1]  # the second batch: the first one warms up
    datamodule.setup("test")
    batch = next(iter(datamodule.eval_dataloader()))
    batch = {k: v[: args.batch].to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    model = model.to(device).eval()
    dtype = AUTOCAST[precision]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        translate_seconds = timed_second_call(lambda: model.translate(batch), device)
    return {
        "model": model_name,
        "precision": precision,
        "train_images_per_s": args.batch / step_seconds,
        "translate_images_per_s": args.batch / translate_seconds,
        "peak_mib": device_peak_mib(device),
    }


def table(rows: list[dict], args: argparse.Namespace) -> str:
    memory = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    lines = [
        f"# gpu-smoke: {args.size} size, {args.image_size} px, batch {args.batch}, {args.device}",
        "",
        f"| model | precision | train images/s | translate images/s | {memory} |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['train_images_per_s']:.2f} | "
            f"{r['translate_images_per_s']:.2f} | {r['peak_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_smoke", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", default="paper", choices=["paper", "tiny"])
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--models", nargs="+", default=["spade", "cocosnet", "midms"])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=list(PRECISIONS))
    p.add_argument("--out", default=None, help="default: benchmarks/results/perf/gpu_smoke_<time>.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log.error("no CUDA device here: make gpu-smoke measures a GPU (for the code path on a CPU: --device cpu)")
        return 2
    rows = []
    for model_name in args.models:
        for precision in args.precision:
            log.info("%s, %s ...", model_name, precision)
            rows.append(measure(model_name, precision, args))
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    report = table(rows, args)
    sys.stdout.write(report)
    out = Path(args.out or ROOT / "benchmarks" / "results" / "perf" / f"gpu_smoke_{time.strftime('%Y%m%d-%H%M%S')}.md")
    atomic_write_text(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
