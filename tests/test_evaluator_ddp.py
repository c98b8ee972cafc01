"""Evaluation sharded over two gloo processes gives the metrics of a one-process evaluation, image for image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir

from midms.data.build import build_datamodule
from midms.evaluation.evaluator import evaluate
from midms.runner import build_metrics

CONF = Path(__file__).resolve().parents[1] / "conf"
OVERRIDES = [
    "model=midms",  # tiny, random: a model that warps (matching accuracy) and whose output depends on its batch
    "dataset.image_size=32",
    "dataset.sizes.test=24",  # 3 batches of 8: the ranks get 2 and 1
    "dataset.datamodule.eval_batch_size=8",
    "model.sampler.refine=false",
    "metrics=pixel",
    "+metrics.swd._target_=midms.metrics.swd.SWD",
    "+metrics.matching_accuracy._target_=midms.metrics.matching.MatchingAccuracy",
]


def _evaluate(run_dir: Path, cache_dir: Path, shard: tuple[int, int]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output_dir={run_dir}", *OVERRIDES])
    logging.disable(logging.WARNING)
    try:
        torch.manual_seed(0)
        datamodule = build_datamodule(cfg.dataset)
        datamodule.setup("test")
        model = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
        dataset = datamodule.eval_dataset
        return evaluate(
            model,
            datamodule.eval_dataloader(),
            build_metrics(cfg),
            run_dir=run_dir,
            cache_dir=cache_dir,
            dataset_key=dataset.dataset_key,
            image_size=dataset.spec.image_size,
            shard=shard,
        )
    finally:
        logging.disable(logging.NOTSET)  # the setting is global: later tests read the log


def _worker(rank: int, init: str, run_dir: str, cache_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    outcome = _evaluate(Path(run_dir), Path(cache_dir), (rank, 2))
    assert (outcome is None) == (rank != 0)
    if rank == 0:
        (Path(run_dir) / "metrics.json").write_text(json.dumps(outcome.metrics))
        outcome.per_image.to_csv(Path(run_dir) / "per_image.csv", index=False)
    dist.destroy_process_group()


def test_two_processes_score_what_one_process_scores(tmp_path):
    one = _evaluate(tmp_path / "one", tmp_path / "cache", (0, 1))
    two_dir = tmp_path / "two"
    mp.spawn(_worker, args=(f"file://{tmp_path / 'init'}", str(two_dir), str(tmp_path / "cache")), nprocs=2)
    two = json.loads((two_dir / "metrics.json").read_text())
    assert set(two) == set(one.metrics) >= {"psnr", "ssim", "swd", "matching_accuracy"}
    for name, value in one.metrics.items():
        assert two[name] == value, name  # the same 8-bit images: the same numbers, not merely close ones
    pd.testing.assert_frame_equal(pd.read_csv(two_dir / "per_image.csv"), one.per_image, check_dtype=False)
    samples = {p.name: p.read_bytes() for p in (two_dir / "samples").glob("*.png")}
    assert len(samples) == 24 and samples == {p.name: p.read_bytes() for p in (tmp_path / "one" / "samples").glob("*")}
    assert not list((two_dir / "eval").glob(".*"))  # the ranks' shares were joined and their parts removed
