"""The configs' custom interpolations, each read in one place instead of an interpolation inside another:

- ``${model_size:<key>}``: the value of ``<key>`` in the selected size's table, ``model.sizes[model.size].<key>``
  (``model.size=paper`` switches every value at once, and an override such as ``model.sizes.paper.prior.path=...``
  still lands where it is read), in place of ``${model.sizes.${model.size}.<key>}``;
- ``${training_only:<value>}``: ``<value>`` when the job trains (``train=true``), else null: a loss network's
  weights are not needed to evaluate (``train=false`` with released weights);
- ``${objective_direction:}``: ``maximize`` or ``minimize``, the direction the objective metric declares
  (``conf/hydra/sweeper/optuna.yaml``).
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


def training_only(value: Any, _root_: DictConfig) -> Any:
    return value if _root_.get("train", True) else None


def objective_direction(_root_: DictConfig) -> str:
    """``maximize`` when the metric of ``objective`` (a value key: its metric's name, or that name and a suffix such
    as ``swd_64``) declares that higher is better, else ``minimize``."""
    import hydra

    key, metrics = str(_root_.objective), _root_.get("metrics") or {}
    name = max((m for m in metrics if key == m or key.startswith(f"{m}_")), key=len, default=None)
    if name is None or "_target_" not in (metrics[name] or {}):
        raise ValueError(f"objective={key} is not a value of a configured metric ({', '.join(metrics)}): "
                         f"the sweep cannot know whether to maximise or minimise it")  # fmt: skip
    return "maximize" if hydra.utils.get_class(metrics[name]._target_).higher_is_better else "minimize"


def register() -> None:
    resolvers = (
        ("model_size", model_size),
        ("training_only", training_only),
        ("objective_direction", objective_direction),
    )
    for name, fn in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
