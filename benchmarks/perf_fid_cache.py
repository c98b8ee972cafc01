"""What the FID reference cache saves over a sweep: ``python benchmarks/perf_fid_cache.py [--runs 3 ...]``.

Simulates K evaluations of a sweep on one dataset split: each run has its own generated images, all share
the split's real images and the cache folder. Each run computes FID and KID (one evaluation context, as
the evaluator does) with a small random conv net injected in place of Inception, through the same
reading, clean-fid resizing, batching, statistics and caching code. Run 1 computes and caches the
reference statistics; runs 2..K read them from ``<cache>/fid_stats/``. With as many real as generated
images the best possible ratio is about 2 (only the generated side is left to compute).

``main(argv)`` returns the measurements as a dict; the script prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from midms.metrics.base import EvalContext
from midms.metrics.fid import FID, KID, files_features

log = logging.getLogger("perf_fid_cache")


def tiny_extractor(dim: int = 16, seed: int = 0) -> nn.Module:
    """A small random conv net with clean-fid's extractor interface (float B×3×H×W in [0, 255] -> B×dim)."""
    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, dim, 4, stride=4), nn.AdaptiveAvgPool2d(1)
            )

        def forward(self, x: Tensor) -> Tensor:
            return 100 * self.body(x / 255.0).flatten(1)  # scaled: distances well above round-off

    return Tiny().eval()


def write_images(folder: Path, n: int, size: int, seed: int, shift: float = 0.0) -> None:
    """Smooth random images; ``shift`` brightens them (a stand-in for models of different quality)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = (rng.random((8, 8, 3)) * 200 + shift).clip(0, 255).astype(np.uint8)
        Image.fromarray(low).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="evaluations in the simulated sweep (K)")
    p.add_argument("--num-images", type=int, default=500, help="generated images per run = real images")
    p.add_argument("--size", type=int, default=64, help="protocol resolution (px)")
    p.add_argument("--mode", default="clean", choices=["clean", "legacy_pytorch", "legacy_tensorflow"])
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", type=Path, default=None, help="keep the images and cache here (default: temp)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    shutil.rmtree(root / "cache", ignore_errors=True)  # run 1 must compute the reference statistics
    write_images(root / "reference" / "image", args.num_images, args.size, seed=0)
    for k in range(args.runs):
        write_images(root / "runs" / f"run{k}" / "samples", args.num_images, args.size, seed=k + 1, shift=10.0 * k)
    device = torch.device(args.device)
    net = tiny_extractor().to(device)
    # warm-up (lazy imports, first kernels), so that run 1 is not charged one-time costs
    warm = sorted((root / "reference" / "image").iterdir())[:2]
    files_features(warm, net, mode=args.mode, image_size=args.size, device=device, progress=False)
    times, cpu_times, cached, fids, kids = [], [], [], [], []
    for k in range(args.runs):
        ctx = EvalContext(
            samples_dir=root / "runs" / f"run{k}" / "samples",
            reference_dir=root / "reference",
            cache_dir=root / "cache",
            dataset_key=f"perf-synthetic_test_{args.size}",
            image_size=args.size,
            device=device,
        )
        common = dict(
            mode=args.mode,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=False,
            feature_extractor=net,
            feature_extractor_id="perf-tiny-conv-seed0",
        )
        metrics = [FID(**common), KID(**common)]
        start, cpu_start = time.perf_counter(), time.process_time()
        values: dict[str, float] = {}
        for m in metrics:
            m.setup(ctx)
            values.update(m.compute(ctx))
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        cached.append(bool(metrics[0].protocol["reference_stats_cached"]))
        fids.append(values["fid"])
        kids.append(values["kid"])
        log.info("run %d: %.2fs, reference stats cached: %s", k, times[-1], cached[-1])
    later = times[1:]
    return {
        "runs": args.runs,
        "num_images": args.num_images,
        "size": args.size,
        "mode": args.mode,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "first_s": round(times[0], 3),
        "cached_s": [round(t, 3) for t in later],
        "cached_mean_s": round(float(np.mean(later)), 3) if later else None,
        "ratio_first_over_cached": round(times[0] / float(np.mean(later)), 2) if later else None,
        "cpu_s": [round(t, 3) for t in cpu_times],  # process CPU time: less sensitive to a busy machine
        "cpu_ratio_first_over_cached": round(cpu_times[0] / float(np.mean(cpu_times[1:])), 2) if later else None,
        "reference_stats_cached": cached,
        "fid": [float(f"{v:.6g}") for v in fids],
        "kid": [float(f"{v:.6g}") for v in kids],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.runs < 2:
        raise SystemExit("--runs must be at least 2 (one run that computes, one that reads the cache)")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="perf_fid_cache_") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(main(), indent=2))
