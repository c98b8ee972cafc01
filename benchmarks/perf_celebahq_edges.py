"""Cost of CelebA-HQ's 15-channel edge tensor (midms.data.celebahq), with and without the edge cache.

    python benchmarks/perf_celebahq_edges.py                 # 16 generated faces at the release's sizes
    python benchmarks/perf_celebahq_edges.py --faces 8 --workers 0

A fake CelebA-HQ layout is generated at the sizes of the release (1024 px JPEG photos, 512 px part masks)
and read with :class:`~midms.data.celebahq.CelebAHQEdges` in one process: evaluation samples (resize to
256) and training samples (load 286, crop 256, flip; every exemplar another face, the costliest case), each
without the cache, with a cold cache (compute and write) and a warm one (read). A sample holds two faces
(input and exemplar). Also timed: the edge tensor alone (ms a face, at 256 px), and with ``--workers N`` a
DataLoader over the warm cache. Reference (CoCosNet's ``celebahqedge_dataset.py``) builds the tensor on
every access, as the "no cache" rows do.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from midms.data import celebahq  # noqa: E402
from midms.testing import fake_celebahq  # noqa: E402

logger = logging.getLogger("perf_celebahq_edges")


def _time_samples(dataset: celebahq.CelebAHQEdges, passes: int = 1) -> float:
    """Samples per second over ``passes`` passes of the dataset in this process."""
    start = time.perf_counter()
    for _ in range(passes):
        for i in range(len(dataset)):
            dataset[i]
    return passes * len(dataset) / (time.perf_counter() - start)


def _time_edge_tensor(root: Path, sample_id: str, size: int, repeats: int) -> float:
    """Milliseconds for the edge tensor of one face (masks and grey photo already loaded)."""
    ds = celebahq.CelebAHQEdges(root, split="val", image_size=size, load_size=size, verify_images="none")
    masks = ds.masks(sample_id, size)
    grey = np.asarray(Image.open(ds.photo_path(sample_id)).resize((size, size), Image.BILINEAR).convert("L"))
    start = time.perf_counter()
    for _ in range(repeats):
        celebahq.edge_tensor(masks, grey)
    return 1000 * (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=16, help="faces per split of the generated layout")
    parser.add_argument("--photo-size", type=int, default=1024)
    parser.add_argument("--mask-size", type=int, default=512)
    parser.add_argument("--size", type=int, default=256, help="crop size (evaluation resize)")
    parser.add_argument("--load-size", type=int, default=286, help="training resize before the crop")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the last row (0: skip)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "celebahq"
        logger.info("generating %d + %d faces at %d px ...", args.faces, args.faces, args.photo_size)
        ids = fake_celebahq.write_fake_layout(root, args.faces, args.faces, args.photo_size, args.mask_size)
        edge_ms = _time_edge_tensor(root, ids["val"][0], args.size, repeats=10)
        for split, load in (("val", args.size), ("train", args.load_size)):
            common = {
                "root": root,
                "split": split,
                "image_size": args.size,
                "load_size": load,
                "real_reference_probability": 1.0,
                "verify_images": "none",
            }
            for mode in ("no cache", "cold cache", "warm cache"):
                cache = None if mode == "no cache" else Path(tmp) / "cache"
                ds = celebahq.CelebAHQEdges(**common, cache_dir=cache)
                rows.append({"split": split, "mode": mode, "workers": 0, "samples_per_s": _time_samples(ds)})
            if args.workers:
                ds = celebahq.CelebAHQEdges(**common, cache_dir=Path(tmp) / "cache")
                loader = DataLoader(ds, batch_size=4, num_workers=args.workers)
                next(iter(loader))  # start the workers outside the timing
                start = time.perf_counter()
                for _ in loader:
                    pass
                rate = len(ds) / (time.perf_counter() - start)
                rows.append({"split": split, "mode": "warm cache", "workers": args.workers, "samples_per_s": rate})
        cache_files = list((Path(tmp) / "cache").rglob("*.npz"))
        cache_kib = sum(f.stat().st_size for f in cache_files) / max(1, len(cache_files)) / 1024

    print(f"edge tensor alone at {args.size} px: {edge_ms:.1f} ms a face; cache: {cache_kib:.0f} KiB a face and size")
    print(f"{'split':<6} {'mode':<11} {'workers':>7} {'samples/s':>10}")
    for row in rows:
        print(f"{row['split']:<6} {row['mode']:<11} {row['workers']:>7} {row['samples_per_s']:>10.1f}")
    return {"edge_tensor_ms": edge_ms, "cache_kib_per_face": cache_kib, "rows": rows, "args": vars(args)}


if __name__ == "__main__":
    main()
