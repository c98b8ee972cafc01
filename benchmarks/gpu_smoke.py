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

A second table gives the achieved TFLOP/s of MIDMs' three hot parts, at the model's size and the run's batch: the
latent UNet's noise prediction, the autoencoder (encode, then decode) and the correlation with its soft warp at the
latent grid (``soft_warp_chunked``). FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matrix products
and convolutions, forward only), time from a device-synchronised second call; convolutional parts run
channels-last, and the UNet's attention goes through PyTorch's SDPA (diffusers' default processor). On CUDA each
figure is also a fraction of the device's dense peak for that precision (:data:`PEAK_TFLOPS`: the vendor's
datasheet; an unknown device gets none).
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


#: dense peak TFLOP/s by device name fragment: fp32 (CUDA cores) and bf16 (tensor cores, without sparsity), from
#: NVIDIA's datasheets (H100 SXM5 / H200: 67 and 989; H100 PCIe: 51 and 756; A100: 19.5 and 312; L4: 30 and 121)
PEAK_TFLOPS = {"H200": (67.0, 989.0), "H100 PCIe": (51.0, 756.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0),
               "L4": (30.3, 121.0)}  # fmt: skip


def device_peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, (fp32, bf16) in PEAK_TFLOPS.items():  # "H100 PCIe" before "H100": the longer names first
        if fragment in name:
            return fp32 if precision == "fp32" else bf16
    return None


def achieved(fn, device: torch.device) -> tuple[float, float]:
    """(FLOPs of one call of ``fn``, seconds of a second call)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return float(counter.get_total_flops()), timed_second_call(fn, device)


def flop_rows(args: argparse.Namespace) -> list[dict]:
    """Achieved TFLOP/s of MIDMs' UNet, autoencoder and correlation, per precision."""
    import hydra

    from midms.models.midms.matching import soft_warp_chunked

    device = torch.device(args.device)
    cfg = _compose("midms", args.size, args.image_size, args.batch)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=build_datamodule(cfg.dataset).spec).to(device).eval()
    prior = model.prior.to(memory_format=torch.channels_last)
    images = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device) * 2 - 1
    with torch.no_grad():
        latents = prior.encode(images.contiguous(memory_format=torch.channels_last))
    channels = int(cfg.model.sizes[args.size].matching.channels)
    features = torch.nn.functional.normalize(
        torch.randn(2, args.batch, channels, *latents.shape[2:], device=device), dim=2
    )
    values = torch.rand(args.batch, 3, *latents.shape[2:], device=device)  # what is warped: an image at the latent grid
    parts = {
        "UNet (noise prediction)": lambda: prior.eps(latents, 300),
        "autoencoder (encode + decode)": lambda: prior.decode(prior.encode(images)),
        "correlation + soft warp": lambda: soft_warp_chunked(features[0], features[1], values),
    }
    rows = []
    for precision in args.precision:
        dtype = AUTOCAST[precision]
        for part, fn in parts.items():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                flops, seconds = achieved(fn, device)
            tflops, peak = flops / seconds / 1e12, device_peak(device, precision)
            rows.append({"part": part, "precision": precision, "gflop": flops / 1e9, "seconds": seconds,
                         "tflops": tflops, "peak_fraction": tflops / peak if peak else None})  # fmt: skip
    return rows


def flop_table(rows: list[dict]) -> str:
    lines = [
        "",
        "| part | precision | GFLOP a call | ms | TFLOP/s | of the device's peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = f"{100 * r['peak_fraction']:.1f} %" if r["peak_fraction"] is not None else "n/a"
        lines.append(f"| {r['part']} | {r['precision']} | {r['gflop']:.3g} | {1000 * r['seconds']:.2f} | "
                     f"{r['tflops']:.3f} | {share} |")  # fmt: skip
    return "\n".join(lines) + "\n"


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
    if "midms" in args.models:
        report += flop_table(flop_rows(args))
    sys.stdout.write(report)
    out = Path(args.out or ROOT / "benchmarks" / "results" / "perf" / f"gpu_smoke_{time.strftime('%Y%m%d-%H%M%S')}.md")
    atomic_write_text(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
