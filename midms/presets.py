"""Paper presets: what a paper's run needs, checked before anything is built.

``conf/preset/<dataset>_<model>.yaml`` holds one model's published settings on one dataset (sizes, optimiser and
schedule, precision, VGG weights, evaluation format); ``conf/config.yaml`` selects it for every run of that pair,
with or without an ``experiment``, and ``~preset`` drops it. Its ``preset`` block says what the run needs:

- ``gpu``: a CUDA device, unless the accelerator was set to the CPU on purpose (``trainer.accelerator=cpu``);
- ``requires``: files and folders, each with what it is and where it comes from (a null path is not in use;
  ``train_only: true`` marks what only training reads, such as the training pairing list; ``unless_set: <key>``
  what another setting replaces, such as the LDM a released MIDMs model brings; ``only_if_set: <key>`` what only
  that setting uses, such as a released model's files);
- ``required_metrics``: the metrics the paper reports, whose weights must be present (not skipped).

:func:`check_preset` gathers every missing piece into one paragraph, so that a run on a laptop, or with one
file missing, stops at once with the whole list rather than one item per attempt or after hours of training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from midms.errors import UserError

GPU_ACCELERATORS = ("gpu", "cuda", "auto")


@dataclass(frozen=True)
class Requirement:
    """One file or folder a preset needs: what it is, where it goes, where it comes from, whether it is here."""

    name: str
    what: str
    path: str
    source: str
    present: bool


def requirements(cfg: DictConfig) -> list[Requirement]:
    """The files and folders the selected preset needs for this run (those in use), present or not."""
    preset = cfg.get("preset")
    out: list[Requirement] = []
    for name, item in ((preset.get("requires") or {}) if preset else {}).items():
        path = item.get("path")
        if item.get("train_only") and not cfg.get("train", True):
            continue
        if item.get("unless_set") and OmegaConf.select(cfg, item.unless_set) not in (None, ""):
            continue
        if item.get("only_if_set") and OmegaConf.select(cfg, item.only_if_set) in (None, ""):
            continue
        if path in (None, "", "random", "torchvision") or str(path) in {r.path for r in out}:
            continue  # not a file, or named already (the losses' and the metrics' VGG19 can be one file)
        present = Path(str(path)).expanduser().exists()
        out.append(
            Requirement(name, item.get("what", "a file"), str(path), item.get("source", "see the preset"), present)
        )
    return out


def needs_gpu(cfg: DictConfig) -> bool:
    """Whether the preset runs on a CUDA device here (not when the accelerator was set to the CPU on purpose)."""
    preset = cfg.get("preset")
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="cpu"))
    return bool(preset and preset.get("gpu") and accelerator in GPU_ACCELERATORS)


def missing_requirements(cfg: DictConfig, metric_problems: Callable[[], Mapping[str, str]] | None = None) -> list[str]:
    """Each thing the selected preset needs and this machine lacks, as ``what (where; how to get it)``."""
    preset = cfg.get("preset")
    if not preset:
        return []
    missing: list[str] = []
    if needs_gpu(cfg) and not torch.cuda.is_available():
        missing.append(
            "a CUDA GPU (this machine has none; a deliberate CPU run sets trainer.accelerator=cpu, at 256 px and "
            "the paper's widths it takes days)"
        )
    listed: dict[str, int] = {}  # path -> index in ``missing``
    for req in requirements(cfg):
        if not req.present:
            listed[req.path] = len(missing)
            missing.append(f"{req.what} at {req.path} ({req.source})")
    if metric_problems is not None:
        wanted = set(preset.get("required_metrics") or ())
        by_reason: dict[str, list[str]] = {}
        for name, reason in metric_problems().items():
            if name in wanted:
                by_reason.setdefault(str(reason).rstrip("."), []).append(name)
        for reason, names in by_reason.items():
            also = [i for path, i in listed.items() if path in reason]
            if also:  # the file is already named: say which metrics need it too
                missing[also[0]] += f", also for the metric(s) {', '.join(names)}"
            else:
                missing.append(f"for the metric(s) {', '.join(names)}: {reason}")
    return missing


def check_preset(cfg: DictConfig, metric_problems: Callable[[], Mapping[str, str]] | None = None) -> None:
    """Raise one :class:`UserError` naming everything :func:`missing_requirements` finds; nothing when all is here."""
    missing = missing_requirements(cfg, metric_problems)
    if not missing:
        return
    name = cfg.preset.get("name", "?")
    items = "; ".join(f"({i}) {m}" for i, m in enumerate(missing, 1))
    raise UserError(
        f"The paper preset {name} (conf/preset/{name}.yaml: the published settings of model={cfg.model.name} on "
        f"dataset={cfg.dataset.name}) cannot run here. Missing: {items}. Put each file where it is named (weights "
        f"under {cfg.paths.cache_dir}/weights, set by MIDMS_CACHE; data under "
        f"{cfg.paths.data_dir}, set by MIDMS_DATA), "
        f"or, for a small trial at the quickstart's sizes instead of the paper's, drop the preset with ~preset."
    )
