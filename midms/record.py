"""The run record: the schema of ``results.json``, and the only code that writes or reads it.

Every job leaves one :class:`RunRecord` in its folder. The runner writes it (``running`` when the job starts,
``completed`` or ``failed`` when it ends); the reports, the benchmark runner and the W&B summary read it back
through :meth:`RunRecord.read` or :func:`iter_records`. The file carries ``schema`` (:data:`SCHEMA`); a file
without it is read as schema 0 (the same fields, before the number was written); schemas 0 and 1 recorded
only each metric's direction, and are read with the rest of ``metric_info`` as the tables of that time knew
it. A file from a newer suite, one with fields this version does not know, or one that is not a run record is
a :class:`RecordError` naming the file, never a row made of guesses.

A ``running`` record whose job has died is reported as ``interrupted`` (:func:`effective_status`): the
process id and host are in the record, and a heartbeat file next to it is touched while the job runs.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from midms.errors import UserError
from midms.files import atomic_write_text
from midms.processes import alive as _alive

SCHEMA = 2
#: the summary-table columns of the metrics of schema-1 records, which did not carry ``metric_info``
_SCHEMA1_HEADLINE = {"fid", "kid", "swd", "fd_dinov2", "fd_clip", "cmmd", "precision", "recall", "density", "coverage",
                     "psnr", "ssim", "lpips", "lpips_diversity", "semantic", "style_color", "style_texture",
                     "style_global", "matching_accuracy"}  # fmt: skip
_SCHEMA1_FID_MODES = {"clean": "clean-fid", "legacy_pytorch": "pytorch-fid", "legacy_tensorflow": "tensorflow-fid"}
RESULTS_FILE = "results.json"
STATUSES = ("running", "completed", "failed", "interrupted")
#: touched every HEARTBEAT_SECONDS while a job runs; a ``running`` record without a fresh one was interrupted
HEARTBEAT_FILE = ".heartbeat"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 10 * HEARTBEAT_SECONDS
UNSTARTED_ERROR = (
    "no results.json: the job stopped before the runner started (a launcher error or a kill); "
    "its config is in .hydra/ and its log next to it"
)


class RecordError(UserError):
    """A ``results.json`` that cannot be read as a run record (unreadable, not JSON, another schema)."""


@dataclass
class RunRecord:
    """One job: what ran, its status, its numbers and the protocol that produced them."""

    status: str = (
        "running"  # running | completed | failed | interrupted (SIGTERM; a dead running job: effective_status)
    )
    model: str | None = None
    dataset: str | None = None
    ablation: str | None = None
    experiment: str | None = None
    seed: int | None = None
    config_hash: str | None = None  # the resolved config without paths and logging (midms.provenance)
    run_dir: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # eval values; None where not finite
    # value key -> {metric, direction ("higher" | "lower" is better), headline, stable_min_images, num_images,
    # implementation}: what the metric declared (midms.metrics.base.ValueInfo); reporting reads only this
    metric_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    metric_errors: dict[str, str] = field(default_factory=dict)  # metric -> the error it raised
    error: str | None = None  # why the job failed
    traceback: str | None = None  # for errors that are not user mistakes
    started: str | None = None  # the first attempt's start; a resumed job keeps it
    resumed: list[str] = field(default_factory=list)  # when each resumed attempt started
    resumed_with_changes: dict[str, Any] | None = None  # resume_with_changes=true: the first hash and the changes
    finished: str | None = None
    pid: int | None = None
    host: str | None = None
    # {"id", "dir", "name", "group", "project", "entity"}: a resumed job continues this W&B run
    wandb: dict[str, str] | None = None
    model_protocol: dict[str, Any] = field(default_factory=dict)  # what the model used (weights, sizes)
    protocol: dict[str, Any] = field(default_factory=dict)  # how it was evaluated (data, metrics, versions)
    train: dict[str, Any] | None = None  # {"seconds", "global_step"}
    eval_seconds: float | None = None
    times: dict[str, float] = field(default_factory=dict)  # seconds per stage (midms.timing)
    files: dict[str, str] = field(default_factory=dict)  # absolute paths: {"samples", "eval", "reference"}
    schema: int = SCHEMA

    @property
    def wandb_id(self) -> str | None:
        return (self.wandb or {}).get("id")

    @property
    def directions(self) -> dict[str, str]:
        return {key: info["direction"] for key, info in self.metric_info.items()}

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def write(self, path: str | Path) -> None:
        """Write atomically: a reader sees the previous record or this one, never half of one."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "a run record") -> RunRecord:
        if not isinstance(data, dict):
            raise RecordError(f"{source} is not a run record (a JSON object with a status): {type(data).__name__}")
        data = dict(data)
        schema = data.pop("schema", 0)  # schema 0: the same fields, written before the number was
        if not isinstance(schema, int) or schema > SCHEMA:
            raise RecordError(
                f"{source} has schema {schema!r}; this version of the suite reads schemas 0 to {SCHEMA}. "
                f"Read it with the version that wrote it, or update the suite."
            )
        if schema < 2:  # metric directions only: the rest of what the metrics declare is filled in as it was
            directions = data.pop("directions", None) or {}
            recorded = (data.get("protocol") or {}).get("metrics") or {}
            data["metric_info"] = {k: _schema1_info(k, d, recorded) for k, d in directions.items()}
        known = {f.name for f in fields(cls)}
        if unknown := sorted(data.keys() - known):
            raise RecordError(f"{source}: fields {unknown} are not part of run record schema {SCHEMA}.")
        if data.get("status") not in STATUSES:
            raise RecordError(f"{source}: status {data.get('status')!r} is not one of {', '.join(STATUSES)}.")
        return cls(**data)

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RecordError(f"{path} is unreadable: {e}") from e
        return cls.from_dict(data, source=str(path))


def _schema1_info(key: str, direction: str, recorded: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 value's entry: the stable minimum, image count and FID mode were in its metric's protocol."""
    return {
        "metric": key,
        "direction": direction,
        "headline": key in _SCHEMA1_HEADLINE,
        "stable_min_images": recorded.get(f"{key}.stable_min_images"),
        "num_images": recorded.get(f"{key}.num_generated"),
        "implementation": _SCHEMA1_FID_MODES.get(recorded.get(f"{key}.mode")),
    }


def _jsonable(value: Any) -> Any:
    """NaN and infinities become ``None`` so the file stays valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def iter_records(root: str | Path) -> Iterator[tuple[Path, RunRecord | RecordError]]:
    """Every ``results.json`` under ``root``, in path order, as a record or the error that reading it gave."""
    for path in sorted(Path(root).rglob(RESULTS_FILE)):
        try:
            yield path, RunRecord.read(path)
        except RecordError as e:
            yield path, e


def unstarted_jobs(root: str | Path) -> list[Path]:
    """Hydra job folders (with ``.hydra/``) under ``root`` that hold no results file: jobs that stopped
    before the runner could record anything."""
    return sorted(p.parent for p in Path(root).rglob(".hydra") if p.is_dir() and not (p.parent / RESULTS_FILE).exists())


def this_process() -> dict[str, Any]:
    """Who writes a ``running`` record: the process id and host, read back by :func:`effective_status`."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def effective_status(record: RunRecord, run_dir: str | Path, now: float | None = None) -> str:
    """The recorded status, except that a ``running`` job that is no longer alive is ``interrupted``.

    Alive means: its heartbeat file was touched within :data:`STALE_AFTER_SECONDS` (the results file's own
    time when there is no heartbeat yet) and, on this host, its process still exists.
    """
    if record.status != "running":
        return record.status
    run_dir = Path(run_dir)
    same_host = record.host == socket.gethostname() and record.pid is not None
    if same_host and not _alive(int(record.pid)):
        return "interrupted"
    beat = run_dir / HEARTBEAT_FILE
    if same_host and not beat.exists():  # alive, and from before its first heartbeat
        return "running"
    ref = beat if beat.exists() else run_dir / RESULTS_FILE
    try:
        age = (time.time() if now is None else now) - ref.stat().st_mtime
    except OSError:
        return "interrupted"
    # a stale heartbeat also catches a process id that a new, unrelated process has taken over
    return "running" if age < STALE_AFTER_SECONDS else "interrupted"
