"""The types of the run's options, checked as soon as the config composes (before torch is imported).

Hydra parses ``seed=abc`` as a string and ``train=yes`` as a string too; without this check such a value fails
deep inside Lightning or the data loader, after the imports and the data. :func:`check_option_types` names every
bad value in one paragraph instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from midms.errors import UserError


@dataclass(frozen=True)
class Option:
    kind: str  # int | bool | str | path | choice
    what: str
    choices: tuple[str, ...] = ()
    optional: bool = False  # null allowed


OPTIONS: dict[str, Option] = {
    "name": Option("str", "the experiment name"),
    "seed": Option("int", "the training seed"),
    "train": Option("bool", "whether to fit the model"),
    "evaluate": Option("bool", "whether to evaluate"),
    "ckpt_path": Option("str", "a Lightning checkpoint to start from", optional=True),
    "resume": Option("bool", "continue an interrupted run"),
    "resume_with_changes": Option("bool", "resume although the config changed"),
    "objective": Option("str", "the metric returned to a sweeper"),
    "evaluation.image_format": Option("choice", "the output file format", ("png", "jpg")),
    "evaluation.device": Option("str", "where evaluation runs (auto, cpu, cuda)"),
    "evaluation.grid_rows": Option("int", "rows of the sample grid"),
    "evaluation.exemplars_per_input": Option("int", "exemplars per input"),
    "dataset.image_size": Option("int", "the image size in pixels"),
    "dataset.datamodule.batch_size": Option("int", "the training batch size"),
    "dataset.datamodule.eval_batch_size": Option("int", "the evaluation batch size"),
    "dataset.datamodule.num_workers": Option("int", "data-loading worker processes"),
    "trainer.max_epochs": Option("int", "the training epochs", optional=True),
    "trainer.max_steps": Option("int", "the training steps (-1: by epochs)"),
}

_ABSENT = object()


def _problem(value: Any, option: Option) -> str | None:
    """What is wrong with ``value`` for ``option`` (None when it is fine)."""
    if value is None:
        return None if option.optional else "a value (not null)"
    if option.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return "an integer"
    if option.kind == "bool" and not isinstance(value, bool):
        return "true or false"
    if option.kind == "str" and not isinstance(value, str | int):
        return "a string"
    if option.kind == "choice" and value not in option.choices:
        return " or ".join(option.choices)
    return None


def check_option_types(cfg: DictConfig) -> None:
    """Raise one :class:`UserError` naming every option of :data:`OPTIONS` whose value has the wrong type."""
    bad = []
    for key, option in OPTIONS.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        except OmegaConfBaseException:  # an interpolation that does not resolve is reported where it is used
            continue
        if value is _ABSENT:
            continue
        expected = _problem(value, option)
        if expected is not None:
            bad.append(f"{key}={value} ({option.what}: expected {expected})")
    if bad:
        raise UserError(
            f"bad value{'s' if len(bad) > 1 else ''} in the configuration: {'; '.join(bad)}. Nothing was run; fix "
            "the override (e.g. seed=1, train=false) and run again. `midms-train --help` lists the options."
        )
