"""Each log line once on the console.

``import lightning`` gives the ``lightning`` logger a console handler of its own ("INFO: ...") and lets its
records propagate to the root logger as well, which Hydra (or ``logging.basicConfig``) has already given a console
and ``run.log``: every Lightning line would appear twice. Lightning's advertising tips are dropped.
"""

from __future__ import annotations

import logging

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def single_console() -> None:
    """Remove Lightning's own console handlers when the root logger prints (its records still reach the root)."""
    if not logging.getLogger().handlers:
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in tips.filters):
        tips.addFilter(_DropTips())
