"""Fixtures for the MIDMs tests: tiny models built through the real config and constructor."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import default_collate

from midms.data.synthetic import SyntheticPairs

CONF = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "conf")

#: an even smaller prior than model.size=tiny, so a test's UNet calls take milliseconds; a prior stage of a few
#: steps, not cached (the cache has its own tests)
SMALL_PRIOR = [
    "model.sizes.tiny.prior.unet.block_out_channels=[8,16]",
    "model.sizes.tiny.prior.unet.attention_head_dim=4",
    "model.sizes.tiny.prior.unet.norm_num_groups=4",
    "model.sizes.tiny.prior.vae.block_out_channels=[8,8,8]",
    "model.sizes.tiny.prior_stage.ae_steps=3",
    "model.sizes.tiny.prior_stage.unet_steps=3",
    "model.module.cache_dir=null",
]


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("config", overrides=["model=midms", "dataset.image_size=32", *overrides])


@pytest.fixture
def build_model():
    """``build_model(*overrides, input="edges")`` -> (MIDMs, SyntheticPairs train split) for a 32 px dataset."""

    def _build(*overrides: str, input: str = "edges", seed: int = 0):
        cfg = compose_cfg(f"dataset.input={input}", *SMALL_PRIOR, *overrides)
        torch.manual_seed(seed)
        ds = SyntheticPairs(
            split="train", image_size=32, num_classes=cfg.dataset.num_classes, input=input, sizes={"train": 64}
        )
        return instantiate(cfg.model.module, data_spec=ds.spec), ds

    return _build


@pytest.fixture
def batch_of():
    """``batch_of(dataset, indices)`` -> a collated batch."""
    return lambda ds, indices: default_collate([ds[i] for i in indices])


@pytest.fixture(autouse=True)
def _single_threaded(one_thread):
    """Every MIDMs test runs single-threaded (``one_thread`` in tests/conftest.py)."""


@pytest.fixture
def isolated_env(isolated_env: dict[str, str]) -> dict[str, str]:
    """The root fixture's environment, single-threaded (see ``one_thread``) for the subprocess runs."""
    return {**isolated_env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
