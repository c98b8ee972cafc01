"""Run a set of metrics with the protocol's bookkeeping: skipped with a reason, failed with the error.

Used by the evaluator (model outputs) and by ``midms-eval`` (folders of another codebase's outputs), so
both report metrics the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor
from tqdm.auto import tqdm

from midms.errors import MetricSkipped
from midms.metrics.base import EvalBatch, EvalContext, Metric, ValueInfo

log = logging.getLogger(__name__)


class MetricSet:
    def __init__(self, metrics: dict[str, Metric], log_skips: bool = True) -> None:
        self.log_skips = log_skips  # False where the caller reports the skipped metrics itself (the pre-flight)
        self.active: dict[str, Metric] = dict(metrics)
        self.skipped: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.protocol: dict[str, Any] = {}
        self.info: dict[str, ValueInfo] = {}  # value key -> what the record says of it (direction, headline, ...)
        self._checked = False

    @property
    def needs_warp(self) -> bool:
        return any(m.needs_warp for m in self.active.values())

    @property
    def directions(self) -> dict[str, str]:
        return {key: info.direction for key, info in self.info.items()}

    def _skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        self.active.pop(name, None)
        if self.log_skips:
            log.warning("metric %s skipped: %s", name, reason)

    def _fail(self, name: str, error: Exception) -> None:
        self.errors[name] = f"{type(error).__name__}: {error}"
        self.active.pop(name, None)
        log.error("metric %s failed", name, exc_info=error)

    def setup(self, ctx: EvalContext) -> None:
        for name, metric in list(self.active.items()):
            try:
                metric.setup(ctx)
            except MetricSkipped as e:
                self._skip(name, str(e))
            except Exception as e:  # e.g. a weight file that is not the published one: an error, never a value
                self._fail(name, e)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        """Feed one batch to every metric; returns the per-image values (name -> B-vector on the CPU)."""
        if not self._checked:  # the first batch tells which metrics the data allow
            for name, metric in list(self.active.items()):
                try:
                    metric.check_batch(batch)
                except MetricSkipped as e:
                    self._skip(name, str(e))
            self._checked = True
        per_image: dict[str, Tensor] = {}
        for name, metric in list(self.active.items()):
            try:
                values = metric.update(batch) or {}
                per_image.update({k: v.detach().float().cpu() for k, v in values.items()})
            except Exception as e:  # one broken metric must not cost the others
                self._fail(name, e)
        return per_image

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, metric in tqdm(list(self.active.items()), desc="metrics", unit="metric", leave=False):
            if ctx.num_images < metric.min_images:
                self._skip(name, f"needs at least {metric.min_images} images, got {ctx.num_images}")
                continue
            try:
                computed = metric.compute(ctx)
                values.update(computed)
                self.info.update({k: metric.value_info(k, ctx.num_images) for k in computed})
                self.protocol.update({f"{name}.{k}": v for k, v in metric.protocol.items()})
            except MetricSkipped as e:
                self._skip(name, str(e))
            except Exception as e:
                self._fail(name, e)
        return values
