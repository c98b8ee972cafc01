"""Speed and memory of MIDMs sampling (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs).

    python benchmarks/perf_midms.py                          # paper size, 256 px, batch 1 and 2, correlation memory
    python benchmarks/perf_midms.py --batch 1 16             # batch 16 too (GPU, or a patient CPU)
    python benchmarks/perf_midms.py --size tiny --image-size 32 --schedule no_refine   # seconds, for a smoke run
    python benchmarks/perf_midms.py --batch 1 16 --precision fp32 bf16 --channels-last  # GPU: autocast variants

Sampling: ``MIDMs.translate`` on B images at once (the batched interleaved sampler: 4 interleaved + 20
refinement UNet evaluations per image) against a naive loop that translates the same B images one at a
time, both with random weights of the chosen size (throughput does not depend on the values). Correlation:
peak memory of the chunked soft warp (``midms.models.midms.matching``) against the dense B×4096×4096 one at
64×64 latents with 256-channel features, for several batch sizes. Every measurement runs in a fresh
subprocess, after a one-image warm-up, and "peak MiB" is the peak above the memory held just before the
measured call: on CUDA ``max_memory_allocated`` after a reset, on the CPU the process's VmHWM after resetting
it to the current RSS (``benchmarks/memory.py``; ``peak_total_mib`` in the returned dict is the whole peak).
CPU peaks go through glibc's allocator, which may keep freed blocks resident: the correlation workers fix its
mmap threshold so their peaks track live tensors; sampling keeps the default allocator (its speed matters).

``--precision bf16|fp16`` runs ``translate`` under ``torch.autocast`` (the softmax of the correlation and the
DDIM arithmetic stay float32, as autocast keeps them); ``--channels-last`` converts the networks and inputs to
``torch.channels_last``. Each variant is measured batched; the naive loop is always fp32 and
contiguous: the baseline. Every finished measurement is written at once (atomically) to
``--out`` (default ``benchmarks/results/perf/midms_<time>.json``), so an interrupted long run keeps what it
measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.memory import current_rss_mib, device_peak_mib, peak_rss_mib, reset_peak_rss  # noqa: E402
from midms.files import atomic_write_text  # noqa: E402

logger = logging.getLogger("perf_midms")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _reset_peak(device: torch.device) -> float:
    """The baseline to subtract: allocated memory (CUDA, peak counter reset) or the RSS now (CPU, VmHWM reset
    to it; where the kernel refuses, the peak so far, which the small warm-up before each call has set)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    return current_rss_mib() if reset_peak_rss() else peak_rss_mib()


def _build(size: str, image_size: int, schedule: str, device: torch.device):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from midms.data.contract import DataSpec

    overrides = ["model=midms", f"model.size={size}", f"model.sizes.{size}.prior.source=random"]
    if schedule == "no_refine":
        overrides.append("ablation=no_refine")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    spec = DataSpec(semantic_nc=15, image_size=image_size, num_classes=None, has_target=False)
    return instantiate(cfg.model.module, data_spec=spec).eval().to(device), spec


def _batch(spec, n: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    s = spec.image_size
    return {
        "semantics": (torch.rand(n, spec.semantic_nc, s, s, generator=g) > 0.9).float().to(device),
        "exemplar_semantics": (torch.rand(n, spec.semantic_nc, s, s, generator=g) > 0.9).float().to(device),
        "exemplar": (torch.rand(n, 3, s, s, generator=g) * 2 - 1).to(device),
    }


def worker_sampling(args) -> dict:
    device = torch.device(args.device)
    model, spec = _build(args.size, args.image_size, args.schedule, device)
    batch = _batch(spec, args.batch_size, device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    dtype = DTYPES[args.worker_precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with autocast:
        model.translate({k: v[:1] for k, v in batch.items()})  # warm-up (kernels, allocator)
        base = _reset_peak(device)
        t0 = time.perf_counter()
        if args.mode == "batched":
            model.translate(batch)
        else:
            for i in range(args.batch_size):
                model.translate({k: v[i : i + 1] for k, v in batch.items()})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = device_peak_mib(device)
    return {
        "seconds": seconds,
        "images_per_s": args.batch_size / seconds,
        "peak_mib": peak - base,
        "peak_total_mib": peak,
    }


def worker_correlation(args) -> dict:
    from midms.models.midms.matching import soft_warp_chunked
    from midms.nn.correspondence import correlation, normalize_features, soft_warp

    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b, n = args.batch_size, 64
    q = normalize_features(torch.randn(b, 256, n, n, generator=g)).to(device)
    k = normalize_features(torch.randn(b, 256, n, n, generator=g)).to(device)
    v = torch.randn(b, 3, n, n, generator=g).to(device)
    with torch.no_grad():  # warm-up on 8×8 so library start-up does not count
        small = (q[:1, :, :8, :8].contiguous(), k[:1, :, :8, :8].contiguous(), v[:1, :, :8, :8].contiguous())
        soft_warp(correlation(small[0], small[1], normalize=False).clamp(min=0), small[2], 0.005)
        soft_warp_chunked(*small, 0.005, chunk=args.chunk)
    base = _reset_peak(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        if args.mode == "dense":
            soft_warp(correlation(q, k, normalize=False).clamp(min=0), v, 0.005)
        else:
            soft_warp_chunked(q, k, v, 0.005, chunk=args.chunk)
    return {"seconds": time.perf_counter() - t0, "peak_mib": device_peak_mib(device) - base}


def _spawn(kind: str, args, channels_last: bool = False, **extra) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--device", args.device, "--size", args.size]
    cmd += ["--image-size", str(args.image_size), "--schedule", args.schedule, "--chunk", str(args.chunk)]
    cmd += ["--channels-last"] if channels_last else []
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ)
    if kind == "correlation":
        # glibc raises its mmap threshold after big frees, then serves 16 MiB blocks from the heap, which keeps
        # freed pages resident: the RSS peak would depend on allocation history. A fixed threshold returns
        # them at once, so the CPU peak tracks live tensors. (Sampling keeps the default allocator: its speed
        # is the point there, and its peak is read with that caveat.)
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(2**20))
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {kind} {extra} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _write_atomic(path: Path, results: dict) -> None:
    atomic_write_text(path, json.dumps(results, indent=1))


def _variants(args) -> list[tuple[str, bool]]:
    """(precision, channels_last) of the batched measurements: every precision, contiguous; then each
    precision channels-last when asked."""
    out = [(p, False) for p in args.precision]
    return out + ([(p, True) for p in args.precision] if args.channels_last else [])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="paper", choices=["paper", "tiny"])
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2], help="sampling batch sizes")
    p.add_argument("--corr-batch", type=int, nargs="+", default=[1, 2, 4], help="correlation batch sizes")
    p.add_argument("--schedule", default="full", choices=["full", "no_refine"])
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=list(DTYPES), help="autocast variants")
    p.add_argument("--channels-last", action="store_true", help="also measure channels-last variants")
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--out", type=Path, help="JSON written after every measurement")
    p.add_argument("--worker", choices=["sampling", "correlation"], help=argparse.SUPPRESS)
    p.add_argument("--mode", default="batched", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-precision", default="fp32", choices=list(DTYPES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        result = (worker_sampling if args.worker == "sampling" else worker_correlation)(args)
        print(json.dumps(result))
        return result

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results: dict = {
        "device": args.device,
        "size": args.size,
        "image_size": args.image_size,
        "schedule": args.schedule,
        "sampling": [],
        "correlation": [],
    }
    out = args.out or ROOT / "benchmarks" / "results" / "perf" / f"midms_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    if not args.skip_sampling:
        for b in args.batch:
            row: dict = {"batch": b, "variants": []}
            results["sampling"].append(row)
            row["naive_loop"] = _spawn("sampling", args, mode="naive_loop", batch_size=b)
            logger.info("sampling batch %d naive loop: %s", b, row["naive_loop"])
            _write_atomic(out, results)
            for precision, channels_last in _variants(args):
                m = _spawn("sampling", args, channels_last, mode="batched", batch_size=b, worker_precision=precision)
                row["variants"].append({"precision": precision, "channels_last": channels_last, **m})
                logger.info("sampling batch %d batched %s%s: %s", b, precision, " CL" * channels_last, m)
                _write_atomic(out, results)
    for b in args.corr_batch:
        row = {"batch": b}
        for mode in ("chunked", "dense"):
            row[mode] = _spawn("correlation", args, mode=mode, batch_size=b)
        results["correlation"].append(row)
        logger.info("correlation batch %d: %s", b, row)
        _write_atomic(out, results)

    lines = [
        f"MIDMs sampling ({args.size}, {args.image_size} px, {args.schedule}, {args.device}); "
        "baseline: the naive loop, fp32",
        f"{'batch':>5} {'variant':>10} {'img/s':>9} {'loop img/s':>11} {'speed-up':>9} {'peak MiB':>9} {'loop MiB':>9}",
    ]
    for r in results["sampling"]:
        lp = r["naive_loop"]
        for v in r["variants"]:
            name = v["precision"] + ("+CL" if v["channels_last"] else "")
            lines.append(
                f"{r['batch']:>5} {name:>10} {v['images_per_s']:>9.4f} {lp['images_per_s']:>11.4f} "
                f"{v['images_per_s'] / lp['images_per_s']:>8.2f}x {v['peak_mib']:>9.0f} {lp['peak_mib']:>9.0f}"
            )
    lines += [
        "Correlation at 64×64 latents, 256 channels (peak MiB above the inputs)",
        f"{'batch':>5} {'chunked MiB':>12} {'dense MiB':>10} {'chunked s':>10} {'dense s':>8}",
    ]
    for r in results["correlation"]:
        c, d = r["chunked"], r["dense"]
        lines.append(
            f"{r['batch']:>5} {c['peak_mib']:>12.1f} {d['peak_mib']:>10.1f} {c['seconds']:>10.3f} {d['seconds']:>8.3f}"
        )
    logger.info("\n%s", "\n".join(lines))
    logger.info("written to %s", out)
    return results


if __name__ == "__main__":
    main()
