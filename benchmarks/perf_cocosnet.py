"""Speed and memory of the CoCosNet baseline: one training step (G step + D step) and inference.

    python benchmarks/perf_cocosnet.py                          # tiny and paper, 64 and 256 px, on the CPU
    python benchmarks/perf_cocosnet.py --sizes tiny --resolutions 64 --steps 5
    python benchmarks/perf_cocosnet.py --device cuda --batch 4  # on a GPU

Each configuration runs in a fresh subprocess, so the peak resident memory (CPU) is its own; on CUDA the
peak is ``torch.cuda.max_memory_allocated``. The VGG19 of the losses is randomly initialised at full
VGG19 width for ``paper`` (the same cost as the pretrained one) and at test width for ``tiny``. The
semantic input is CelebA-HQ's 15-channel edge tensor. Step time is the median over ``--steps`` steps
after one warm-up step; inference is ``translate`` on a batch, in images per second.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.memory import device_peak_mib, device_sync, timed_second_call  # noqa: E402

logger = logging.getLogger("perf_cocosnet")

SIZES = {
    "tiny": {"ngf": 8, "ndf": 8, "match_channels": 32, "spade_hidden": 16, "vgg_widths": [4, 8, 8, 16, 16]},
    "paper": {"ngf": 64, "ndf": 64, "match_channels": 256, "spade_hidden": 128, "vgg_widths": None},
}
SEMANTIC_NC = 15  # CelebA-HQ edge-to-face


def measure_one(size: str, resolution: int, batch: int, steps: int, device: str) -> dict:
    """One configuration in this process: build, train ``steps`` + 1 steps, translate once more."""
    from midms.baselines.cocosnet.model import CoCosNet

    from midms.data.contract import DataSpec

    dev = torch.device(device)
    torch.manual_seed(0)
    spec = DataSpec(semantic_nc=SEMANTIC_NC, image_size=resolution, num_classes=None, has_target=False)
    settings = {"warp_bilinear": True, "adaptor_kernel": 4, "warp_cycle_w": 1.0, "which_perceptual": "relu4_2"}
    logging.getLogger("midms.baselines.cocosnet.model").setLevel(
        logging.ERROR
    )  # the random-VGG warning is expected here
    model = CoCosNet(spec, settings=settings, vgg_weights="random", **SIZES[size]).to(dev)
    (opt_g, opt_d), _ = model.configure_optimizers()
    data = {
        "semantics": (torch.rand(batch, SEMANTIC_NC, resolution, resolution, device=dev) > 0.9).float(),
        "image": torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1,
        "exemplar": torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1,
        "id": [f"a{i}" for i in range(batch)],
        "exemplar_id": [f"b{i}" for i in range(batch)],
    }
    data["exemplar_semantics"] = data["semantics"].flip(-1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> float:
        device_sync(dev)
        t0 = time.perf_counter()
        terms, out = model.generator_losses(data)
        opt_g.zero_grad()
        torch.stack(list(terms.values())).sum().backward()
        opt_g.step()
        opt_g.zero_grad()
        d_terms = model.discriminator_losses(data, out["fake"])
        opt_d.zero_grad()
        torch.stack(list(d_terms.values())).sum().backward()
        opt_d.step()
        opt_d.zero_grad()
        device_sync(dev)
        return time.perf_counter() - t0

    step()  # warm-up
    times = [step() for _ in range(steps)]
    model.eval()
    with torch.no_grad():
        infer = timed_second_call(lambda: model.translate(data), dev)
    peak_mib = device_peak_mib(dev)
    return {
        "size": size,
        "resolution": resolution,
        "batch": batch,
        "device": str(dev),
        "params_m": round(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 2),
        "step_s": round(statistics.median(times), 3),
        "infer_img_s": round(batch / infer, 2),
        "peak_mib": round(peak_mib, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "paper"], choices=sorted(SIZES))
    parser.add_argument("--resolutions", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each run (default: torch's)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a single run; its JSON goes to this file
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        result = measure_one(args.sizes[0], args.resolutions[0], args.batch, args.steps, args.device)
        Path(args.one).write_text(json.dumps(result))
        return result

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    out = Path(tempfile.mkdtemp()) / "one.json"
    for size in args.sizes:
        for res in args.resolutions:
            cmd = [sys.executable, __file__, "--one", str(out), "--sizes", size, "--resolutions", str(res)]
            cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            logger.info("measuring %s at %d px ...", size, res)
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                rows.append({"size": size, "resolution": res, "error": proc.stderr.strip().splitlines()[-1]})
                continue
            rows.append(json.loads(out.read_text()))
    header = f"{'size':<6} {'px':>4} {'batch':>5} {'params M':>9} {'step s':>8} {'infer img/s':>12} {'peak MiB':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['size']:<6} {r['resolution']:>4} failed: {r['error']}")
        else:
            lines.append(
                f"{r['size']:<6} {r['resolution']:>4} {r['batch']:>5} {r['params_m']:>9} {r['step_s']:>8} "
                f"{r['infer_img_s']:>12} {r['peak_mib']:>9}"
            )
    logger.info("CoCosNet on %s (threads %d)\n%s", args.device, torch.get_num_threads(), "\n".join(lines))
    return {"device": args.device, "rows": rows}


if __name__ == "__main__":
    main()
