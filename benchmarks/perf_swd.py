"""Speed, agreement and memory of the torch SWD (midms.metrics.swd) against the NumPy/SciPy reference.

    python benchmarks/perf_swd.py                  # 2,000 images of 256 px; RSS at 2,000 and 8,000
    python benchmarks/perf_swd.py --images 200     # quick (under a minute on an idle 2-core CPU)
    python benchmarks/perf_swd.py --threads 1      # steadier timings on a shared, busy machine

Both implementations get identical patch positions and directions, so their values should agree to float
rounding (target < 2 %); the change under another seed is shown for scale. Peak RSS of the chunked torch
path is measured per image count (default: N and 4N) in a fresh subprocess, images streamed, never all
held. On a CUDA machine the torch path is also timed on the GPU. Target: torch ≥ 2× faster on CPU.
``main(argv)`` returns the measurements as a dict; the script also prints them as a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.memory import peak_rss_mib  # noqa: E402
from midms.metrics import swd  # noqa: E402
from midms.testing import swd_reference as ref  # noqa: E402

logger = logging.getLogger("perf_swd")


def synthetic_chunk(n: int, size: int, seed: int, sharpness: float = 1.0) -> torch.Tensor:
    """uint8 n×3×size×size structured images: colour blobs, oriented stripes, grain (weighted by sharpness)."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(0, n, 8):  # small groups keep the float temporaries in cache
        m = min(8, n - i)
        blobs = F.interpolate(torch.rand(m, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
        angle = torch.rand(m, 1, 1, generator=g) * torch.pi
        freq = (0.1 + 0.4 * torch.rand(m, 1, 1, generator=g)) * 256 / size
        stripes = 0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)))[:, None]
        x = torch.rand(m, 3, size, size, generator=g).mul_(0.2 * sharpness).add_(blobs, alpha=0.5)
        x.add_(stripes, alpha=0.3).clamp_(0, 1).mul_(255).round_()
        out[i : i + m] = x.to(torch.uint8)
    return out


def stream(num: int, size: int, chunk: int, seed: int, sharpness: float = 1.0) -> Iterator[torch.Tensor]:
    for i, start in enumerate(range(0, num, chunk)):
        yield synthetic_chunk(min(chunk, num - start), size, seed * 1_000_003 + i, sharpness)


def pooled_stream(num: int, size: int, chunk: int, seed: int, sharpness: float = 1.0) -> Iterator[torch.Tensor]:
    """Like :func:`stream`, but cycles a pool of 4 chunks (rolled) so that making images costs little."""
    pool = [synthetic_chunk(chunk, size, seed * 1_000_003 + i, sharpness) for i in range(4)]
    for i, start in enumerate(range(0, num, chunk)):
        images = pool[i % 4][: min(chunk, num - start)]
        yield images.roll(shifts=(7 * i, 13 * i), dims=(2, 3))


def rss_child(num: int, size: int, chunk: int) -> dict[str, float]:
    """The streamed torch path on ``num`` images a side, in this process; reports its peak RSS."""
    real, fake = pooled_stream(num, size, chunk, 1), pooled_stream(num, size, chunk, 2, 0.5)
    baseline = peak_rss_mib()
    start = time.perf_counter()
    values = swd.compute_swd(real, num, fake, num, size, progress=False)
    seconds = time.perf_counter() - start
    levels = len(swd.pyramid_resolutions(size))
    return {
        "images": num,
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "baseline_rss_mib": baseline,
        "descriptor_mib": 2 * num * 128 * 147 * 4 * levels / 2**20,
        "swd": values["swd"],
    }


def time_torch(real: torch.Tensor, fake: torch.Tensor, shared: dict, chunk: int, device: str) -> tuple[dict, float]:
    def chunks(x: torch.Tensor) -> Iterator[torch.Tensor]:
        return (x[i : i + chunk] for i in range(0, len(x), chunk))

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    real_desc = swd.collect_descriptors(chunks(real), shared["real_pos"], 7, device)
    fake_desc = swd.collect_descriptors(chunks(fake), shared["fake_pos"], 7, device)
    values = swd.swd_from_descriptors(real_desc, fake_desc, shared["dirs"], shared["resolutions"])
    if device == "cuda":
        torch.cuda.synchronize()
    return values, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per side (real and fake)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64, help="images per chunk of the torch path")
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=None, help="default: images and 4×images")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-numpy", action="store_true", help="skip the (slow) NumPy reference")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args.rss_child is not None:
        result = rss_child(args.rss_child, args.size, args.chunk)
        print(json.dumps(result))
        return result

    n, size = args.images, args.size
    logger.info("generating 2×%d images of %d px", n, size)
    real = torch.cat(list(stream(n, size, 256, 1)))
    fake = torch.cat(list(stream(n, size, 256, 2, sharpness=0.5)))  # a nearby distribution: less grain
    resolutions = swd.pyramid_resolutions(size)
    g = torch.Generator().manual_seed(0)
    shared = {
        "resolutions": resolutions,
        "real_pos": [swd.sample_patch_positions(n, 128, r, 7, g) for r in resolutions],
        "fake_pos": [swd.sample_patch_positions(n, 128, r, 7, g) for r in resolutions],
        "dirs": [swd.random_directions(147, 128, 4, g) for _ in resolutions],
    }
    results: dict = {"images": n, "size": size, "cpu_threads": torch.get_num_threads()}

    logger.info("torch on CPU")
    values_torch, results["torch_cpu_s"] = time_torch(real, fake, shared, args.chunk, "cpu")
    results["torch_values"] = values_torch
    results["torch_cpu_images_per_s"] = 2 * n / results["torch_cpu_s"]

    if not args.skip_numpy:
        logger.info("NumPy/SciPy reference on CPU")
        start = time.perf_counter()
        values_np = ref.swd(
            real.numpy(),
            fake.numpy(),
            real_positions=[p.numpy() for p in shared["real_pos"]],
            fake_positions=[p.numpy() for p in shared["fake_pos"]],
            direction_sets=[d.numpy() for d in shared["dirs"]],
        )
        results["numpy_s"] = time.perf_counter() - start
        results["numpy_values"] = values_np
        results["speedup_cpu"] = results["numpy_s"] / results["torch_cpu_s"]
        results["max_rel_diff"] = max(abs(values_torch[k] / values_np[k] - 1) for k in values_np)

    logger.info("seed-to-seed spread of the torch path")
    chunks = [real[i : i + args.chunk] for i in range(0, n, args.chunk)]
    fchunks = [fake[i : i + args.chunk] for i in range(0, n, args.chunk)]
    other_seed = swd.compute_swd(chunks, n, fchunks, n, size, seed=1, progress=False)["swd"]
    results["seed_rel_spread"] = abs(other_seed / values_torch["swd"] - 1)

    if torch.cuda.is_available():
        logger.info("torch on CUDA")
        time_torch(real[: args.chunk], fake[: args.chunk], _prefix(shared, args.chunk), args.chunk, "cuda")  # warm-up
        values_cuda, seconds = time_torch(real, fake, shared, args.chunk, "cuda")
        results["cuda_device"] = torch.cuda.get_device_name()
        results["torch_cuda_s"] = seconds
        results["cuda_images_per_s"] = 2 * n / seconds
        results["cuda_vs_cpu_max_rel_diff"] = max(abs(values_cuda[k] / values_torch[k] - 1) for k in values_torch)

    del real, fake
    rss_sizes = args.rss_sizes if args.rss_sizes is not None else [n, 4 * n]
    results["rss"] = {}
    for num in rss_sizes:
        logger.info("peak RSS of the streamed torch path at %d images (subprocess)", num)
        cmd = [sys.executable, __file__, "--rss-child", str(num), "--size", str(size), "--chunk", str(args.chunk)]
        cmd += ["--threads", str(torch.get_num_threads())]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results["rss"][num] = json.loads(out.strip().splitlines()[-1])

    print(format_table(results))
    return results


def _prefix(shared: dict, k: int) -> dict:
    return {**shared, "real_pos": [p[:k] for p in shared["real_pos"]], "fake_pos": [p[:k] for p in shared["fake_pos"]]}


def format_table(r: dict) -> str:
    rows = [
        ("images per side, size", f"{r['images']}, {r['size']} px"),
        ("torch CPU", f"{r['torch_cpu_s']:.1f} s ({r['torch_cpu_images_per_s']:.0f} img/s, {r['cpu_threads']} thr.)"),
    ]
    if "numpy_s" in r:
        rows += [
            ("NumPy/SciPy reference", f"{r['numpy_s']:.1f} s"),
            ("speed-up on CPU (target ≥ 2×)", f"{r['speedup_cpu']:.2f}×"),
            ("max rel. diff, same draws (target < 2 %)", f"{100 * r['max_rel_diff']:.5f} %"),
        ]
    rows.append(("rel. change with another seed", f"{100 * r['seed_rel_spread']:.2f} %"))
    if "cuda_images_per_s" in r:
        rows += [
            (f"torch CUDA ({r['cuda_device']})", f"{r['torch_cuda_s']:.2f} s ({r['cuda_images_per_s']:.0f} img/s)"),
            ("max rel. diff CUDA vs CPU", f"{100 * r['cuda_vs_cpu_max_rel_diff']:.5f} %"),
        ]
    for num, m in r["rss"].items():
        rows.append(
            (
                f"peak RSS, {num} images a side",
                f"{m['peak_rss_mib']:.0f} MiB (after imports {m['baseline_rss_mib']:.0f}, descriptors "
                f"{m['descriptor_mib']:.0f}; {m['seconds']:.1f} s)",
            )
        )
    values = r.get("numpy_values", {})
    for key, value in r["torch_values"].items():
        rows.append((f"  {key} torch / numpy", f"{value:.4f} / {values.get(key, float('nan')):.4f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()
