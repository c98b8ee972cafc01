"""Where a job's time goes: seconds per stage, printed as a table at the end of the job, recorded in
``results.json`` (``times``) and in the W&B summary (``time/<stage>``).

Stages: ``startup`` (from the entry point's import to the first job: imports, Hydra, plugins), ``setup`` (checks,
data, model, loggers), the stages a model runs before its first step (MIDMs' ``prior``, a ``loss network``:
``TranslationModel.stage_seconds``), ``training`` (the rest of the fit), ``translation``, ``scoring``, ``other``
(the trainer's set-up, records, logging: what the stages leave of the total) and ``total``.
"""

from __future__ import annotations

import time

#: when the entry point imported this module (``midms.train`` does, first)
PROCESS_START = time.perf_counter()
_first_job = True


def startup_seconds() -> float:
    """The startup of the process for its first job; 0 for the later jobs of a sweep (it was paid once)."""
    global _first_job
    seconds = time.perf_counter() - PROCESS_START if _first_job else 0.0
    _first_job = False
    return seconds


def stage_table(times: dict[str, float]) -> str:
    """A two-column table of ``times`` with each stage's share of the total."""
    total = times.get("total") or sum(times.values()) or 1.0
    width = max(len(k) for k in times)
    lines = [f"{'stage':<{width}}  seconds  share"]
    for stage, seconds in times.items():
        share = "" if stage == "total" else f"{100 * seconds / total:5.1f} %"
        lines.append(f"{stage:<{width}}  {seconds:7.1f}  {share}")
    return "\n".join(lines)
