"""Overrides that make an end-to-end job take seconds: tiny synthetic data, small batches."""

TINY = [
    "dataset.image_size=32",
    "dataset.sizes.train=16",
    "dataset.sizes.val=4",
    "dataset.sizes.test=8",
    "dataset.datamodule.batch_size=4",
    "evaluation.grid_rows=2",
]
