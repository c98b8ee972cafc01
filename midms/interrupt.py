"""SIGTERM (a scheduler's pre-emption, ``kill``, a submitit time limit) stops a job at its next safe point.

The signal only sets a flag (:func:`install`); the job stops where its state is whole: after an optimiser step,
where :class:`midms.training.sigterm.StopOnSigterm` (``callbacks.sigterm``) writes ``last.ckpt`` first; between
steps of the prior stage; between evaluation batches. There :func:`check` raises :class:`JobInterrupted`, which
the runner records as ``interrupted`` with a non-zero exit. ``resume=true`` continues from the checkpoint (a job
stopped before its first checkpoint, in the prior stage, starts again from the beginning).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_REQUESTED = threading.Event()


class JobInterrupted(Exception):
    """The job was asked to stop (SIGTERM) and stopped at a safe point."""


def requested() -> bool:
    return _REQUESTED.is_set()


def check(where: str) -> None:
    """Raise :class:`JobInterrupted` when a stop was requested."""
    if _REQUESTED.is_set():
        raise JobInterrupted(f"stopped by SIGTERM during {where}")


def install() -> Callable[[], None]:
    """Catch SIGTERM for this job (main thread only); returns the function that puts the previous handler back."""
    _REQUESTED.clear()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame) -> None:
        if not _REQUESTED.is_set():
            log.warning("SIGTERM received: stopping at the next safe point (after the step, with a checkpoint)")
        _REQUESTED.set()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
