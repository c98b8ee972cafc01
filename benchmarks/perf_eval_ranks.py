"""Evaluation over ranks: translation time with 1 and with N processes (gloo), and the same scores.

    python -m benchmarks.perf_eval_ranks [--images 128] [--ranks 2] [--image-size 64]

The tiny MIDMs (random weights: the work, not the quality, is measured) translates the synthetic test split into
a run folder with :func:`midms.evaluation.evaluate`: in one process with every core (the baseline), sharded over
``--ranks`` processes (gloo, the cores split between them: each rank translates its batches, ``b % world``, rank
zero scores the joined folder), and in one process at a rank's thread count. Reports the translation seconds
(``Scores.translation_seconds``, from the first batch to the last share written), the speed-up over the baseline,
and whether the sharded run's scores and sample files equal, bit for bit, those of one process computing with the
same threads (with another thread count the arithmetic sums in another order, and the last bits may differ).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _overrides(images: int, image_size: int) -> list[str]:
    return ["model=midms", f"dataset.image_size={image_size}", f"dataset.sizes.test={images}",
            "dataset.datamodule.eval_batch_size=8", "metrics=pixel"]  # fmt: skip


def _evaluate(run_dir: Path, cache_dir: Path, shard: tuple[int, int], images: int, image_size: int):
    import hydra
    from hydra import compose, initialize_config_dir

    from midms.data.build import build_datamodule
    from midms.evaluation.evaluator import evaluate
    from midms.resources import conf_dir
    from midms.runner import build_metrics

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output_dir={run_dir}", *_overrides(images, image_size)])
    torch.manual_seed(0)
    datamodule = build_datamodule(cfg.dataset)
    datamodule.setup("test")
    model = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
    dataset = datamodule.eval_dataset
    return evaluate(model, datamodule.eval_dataloader(), build_metrics(cfg), run_dir, cache_dir, dataset.dataset_key,
                    dataset.spec.image_size, shard=shard)  # fmt: skip


def _rank(rank: int, world: int, init: str, run_dir: str, cache_dir: str, images: int, image_size: int,
          threads: int) -> None:  # fmt: skip
    torch.set_num_threads(threads)
    logging.disable(logging.WARNING)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    scores = _evaluate(Path(run_dir), Path(cache_dir), (rank, world), images, image_size)
    if rank == 0:
        out = {"metrics": scores.metrics, "translation_s": scores.translation_seconds}
        (Path(run_dir) / "outcome.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def _samples(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (run_dir / "samples").iterdir()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=128, help="evaluation pairs (synthetic test split)")
    p.add_argument("--ranks", type=int, default=2, help="processes of the sharded evaluation")
    p.add_argument("--image-size", type=int, default=64, help="image size in pixels")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        cores = os.cpu_count() or 1
        share = max(1, cores // args.ranks)
        runs = {  # name -> (processes, threads each); the reference cache is filled by the first
            "one": (1, cores),  # one process with every core: the baseline of the speed-up
            "one_at_share": (1, share),  # one process at a rank's threads: the same arithmetic as each rank's
            "sharded": (args.ranks, share),
        }
        outcome = {}
        for name, (world, threads) in runs.items():
            run_args = (world, f"file://{tmp / name}.init", str(tmp / name), str(cache), args.images, args.image_size)
            if world == 1:
                _rank(0, *run_args, threads)
            else:
                mp.spawn(_rank, nprocs=world, args=(*run_args, threads))
            outcome[name] = json.loads((tmp / name / "outcome.json").read_text())
        same_files = _samples(tmp / "one_at_share") == _samples(tmp / "sharded")
    result = {
        "images": args.images,
        "ranks": args.ranks,
        "cpu_count": cores,
        "one_process_s": outcome["one"]["translation_s"],
        "sharded_s": outcome["sharded"]["translation_s"],
        "speedup": outcome["one"]["translation_s"] / outcome["sharded"]["translation_s"],
        # each rank computes as one process with its threads does: the same files and scores, bit for bit
        "same_scores": outcome["one_at_share"]["metrics"] == outcome["sharded"]["metrics"],
        "same_samples": same_files,
        # with all cores one process sums in another order: the last bits of some pixels may differ
        "psnr_one_vs_sharded": [outcome["one"]["metrics"].get("psnr"), outcome["sharded"]["metrics"].get("psnr")],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
