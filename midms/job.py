"""One job's record from start to end: ``results.json`` says ``running`` while the job runs and ``completed``,
``failed`` (with the error) or ``interrupted`` (with the command that continues it) when it ends, whatever ends it.

:class:`JobRecord` is the context the runner's job runs in: it writes the record, keeps a heartbeat, turns
SIGTERM into an orderly stop, turns an exception into the record's status and message (a user mistake without a
traceback), closes the loggers and remembers failed jobs for the exit code (:data:`FAILED_JOBS`).
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only

from midms import interrupt, preflight
from midms.errors import UserError
from midms.provenance import Heartbeat
from midms.record import RESULTS_FILE, RecordError, RunRecord
from midms.tracking import loggers as tracking

log = logging.getLogger(__name__)

#: run directories of the jobs of this process that failed; ``run.py`` turns them into the exit code
FAILED_JOBS: list[str] = []


def previous_record(run_dir: Path) -> RunRecord | None:
    """The record an earlier attempt left in this folder (a resumed job continues its W&B run), if readable."""
    if not (run_dir / RESULTS_FILE).exists():
        return None
    try:
        return RunRecord.read(run_dir / RESULTS_FILE)
    except RecordError as e:
        log.warning("ignoring the earlier record: %s", e)
        return None


def user_error(e: BaseException | None) -> UserError | None:
    """The UserError behind ``e``, also when Hydra's instantiate wrapped it, else None."""
    while e is not None:
        if isinstance(e, UserError):
            return e
        e = e.__cause__ if isinstance(e, InstantiationException) else None
    return None


class JobRecord:
    """``with JobRecord(run_dir, record) as job:`` the job's body; set ``job.loggers`` once they exist and
    ``job.record.status = "completed"`` at the body's end."""

    def __init__(self, run_dir: Path, record: RunRecord) -> None:
        self.run_dir, self.record = Path(run_dir), record
        self.loggers: list[Any] = []
        self.objective = math.nan
        self._heartbeat = Heartbeat(self.run_dir)
        self._restore_sigterm = lambda: None

    def write(self) -> None:
        """Only the rank-zero process of a DDP job writes the record (the others share its folder)."""
        if rank_zero_only.rank == 0:
            self.record.write(self.run_dir / RESULTS_FILE)

    def __enter__(self) -> JobRecord:
        self.write()
        self._heartbeat.start()
        self._restore_sigterm = interrupt.install()
        return self

    def __exit__(self, kind, error, tb) -> bool:
        record = self.record
        handled = True
        if isinstance(error, interrupt.JobInterrupted | SystemExit):  # SystemExit: Lightning's stop after SIGTERM
            if isinstance(error, interrupt.JobInterrupted) or interrupt.requested():
                record.status = "interrupted"
                resume = f"python run.py <same overrides> hydra.run.dir={self.run_dir} resume=true"
                record.error = f"{error or 'stopped by SIGTERM'}. Continue it: {resume}"
                log.warning("%s", record.error)
            else:
                handled = False
        elif isinstance(error, Exception):
            mistake = user_error(error) or preflight.disk_full(error)
            record.status = "failed"
            if mistake is not None:  # a user mistake: the message says what to change; no traceback
                record.error = str(mistake)
                log.error("%s", mistake)
            else:
                record.error = f"{type(error).__name__}: {error}"
                record.traceback = "".join(traceback.format_exception(error))
                log.error("job failed", exc_info=error)
        self._heartbeat.stop()
        self._restore_sigterm()
        record.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.write()
        tracking.finish(self.loggers, record.status, self.run_dir / RESULTS_FILE)
        if record.status in ("failed", "interrupted"):
            FAILED_JOBS.append(str(self.run_dir))
            self.objective = math.nan
        elif error is None:
            log.info("results: %s", {k: round(v, 4) for k, v in record.metrics.items() if v is not None})
        # an interruption or a failure is recorded, not raised: the other jobs of a sweep still run
        return error is not None and handled and isinstance(error, Exception | interrupt.JobInterrupted | SystemExit)
