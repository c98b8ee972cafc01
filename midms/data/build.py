"""A dataset's config, each value written once, built into its datamodule.

A dataset YAML (``conf/dataset/<name>.yaml``) names its class (``_target_``) and lists the class's arguments at
its top level, each once (``dataset.image_size=32`` on the command line sets the class's ``image_size``), and
the loader settings under ``datamodule:`` (the arguments of :class:`TranslationDataModule` but the dataset).
:func:`build_datamodule` is the one place that turns it into a datamodule; ``name`` is the dataset's name in
records and tags, and ``_target_``, ``name`` and ``datamodule`` are the only keys that are not arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from midms.data.datamodule import TranslationDataModule

#: the keys of a dataset config that are not arguments of its class
NOT_ARGUMENTS = ("_target_", "name", "datamodule")


def dataset_factory(dataset_cfg: DictConfig | dict) -> Callable[..., Dataset]:
    """The dataset class with its configured arguments: ``factory(split=...)`` builds one split."""
    conf = OmegaConf.to_container(dataset_cfg, resolve=True) if isinstance(dataset_cfg, DictConfig) else dataset_cfg
    args: dict[str, Any] = {k: v for k, v in conf.items() if k not in NOT_ARGUMENTS}
    return hydra.utils.instantiate({"_target_": conf["_target_"], "_partial_": True, **args})


def build_datamodule(dataset_cfg: DictConfig | dict) -> TranslationDataModule:
    """The datamodule of ``cfg.dataset``: its dataset class and arguments, its loader settings."""
    conf = OmegaConf.to_container(dataset_cfg, resolve=True) if isinstance(dataset_cfg, DictConfig) else dataset_cfg
    return TranslationDataModule(dataset=dataset_factory(conf), **conf.get("datamodule", {}))
