"""Overrides that make an end-to-end job take seconds: tiny synthetic data, small batches."""

TINY = [
    "dataset.image_size=32",
    "dataset.sizes.train=16",
    "dataset.sizes.val=4",
    "dataset.sizes.test=8",
    "dataset.datamodule.batch_size=4",
    "evaluation.grid_rows=2",
    "trainer.max_epochs=1",  # the quickstart experiment trains four
]

#: with model=midms: a narrower autoencoder, a prior stage of a few steps, and both MIDMs phases (half each)
MIDMS_TINY = [
    "model.sizes.tiny.prior.vae.block_out_channels=[8,8,8]",
    "model.sizes.tiny.prior_stage.ae_steps=4",
    "model.sizes.tiny.prior_stage.unet_steps=4",
    "model.sizes.tiny.training.warmup_iter=0.5",
]


def write_fake_runs(runs_dir, psnrs=(20.0, 22.0)) -> None:
    """Completed results.json files of one model over seeds, as a benchmark's runs folder holds them."""
    import json
    from pathlib import Path

    for seed, psnr in enumerate(psnrs):
        job = Path(runs_dir) / f"s{seed}"
        job.mkdir(parents=True)
        res = {"status": "completed", "model": "m", "dataset": "synthetic", "ablation": "none", "seed": seed,
               "metrics": {"psnr": psnr}, "directions": {"psnr": "higher"}}  # fmt: skip
        (job / "results.json").write_text(json.dumps(res))
