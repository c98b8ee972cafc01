"""MIDMs benchmark suite: exemplar-based image translation, trained and evaluated one way.

The public API (the command lines are thin wrappers over it; ``docs/`` has the guides)::

    from midms import score_folders, score_folder, evaluate, Scores, RunRecord, TranslationModel, Metric

- :func:`score_folders`: score a folder of outputs from any codebase against real images (``midms-eval``);
- :func:`score_folder`: score a translated run folder (``samples/`` and ``eval/``), as the runner does;
- :func:`evaluate`: translate a dataloader with a model into a run folder, then score it;
- :class:`Scores`: what a scoring returns; :class:`RunRecord`: a job's ``results.json``;
- :class:`TranslationModel`: the base of every method; :class:`Metric`: the base of every metric.

Names are imported on first use, so ``import midms`` stays cheap for the command lines.
"""

from __future__ import annotations

import importlib
from typing import Any

from midms import resolvers

__version__ = "0.1.0"
resolvers.register()  # the configs' ${model_size:<key>}, wherever they are composed

_EXPORTS = {
    "score_folders": "midms.evaluation.score_folders",
    "score_folder": "midms.evaluation.scoring",
    "Scores": "midms.evaluation.scoring",
    "evaluate": "midms.evaluation.evaluator",
    "RunRecord": "midms.record",
    "TranslationModel": "midms.models.base",
    "Metric": "midms.metrics.base",
    "ValueInfo": "midms.metrics.base",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'midms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
