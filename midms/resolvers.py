"""The configs' one custom interpolation: ``${model_size:<key>}``, the value of ``<key>`` in the selected size's
table, ``model.sizes[model.size].<key>`` (``model.size=paper`` switches every value at once, and an override such as
``model.sizes.paper.prior.path=...`` still lands where it is read). It replaces the nested interpolation
``${model.sizes.${model.size}.<key>}``: one name, read in one place, instead of an interpolation inside another.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def model_size(key: str, _root_: DictConfig) -> Any:
    size = _root_.model.size
    if size not in _root_.model.sizes:
        known = ", ".join(_root_.model.sizes)
        raise ValueError(f"model.size={size}, but model.sizes.{size} does not exist (sizes: {known})")
    return OmegaConf.select(_root_.model.sizes[size], key, throw_on_missing=True)


def register() -> None:
    if not OmegaConf.has_resolver("model_size"):
        OmegaConf.register_new_resolver("model_size", model_size)
