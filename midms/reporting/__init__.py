"""Reporting: every table of the suite (a sweep, a benchmark, a W&B project) comes from here.

:mod:`~midms.reporting.collect` reads the jobs, :mod:`~midms.reporting.tables` makes and writes the tables,
:mod:`~midms.reporting.plots` the figures, :mod:`~midms.reporting.cli` is ``midms-report``. Reporting reads run
records (and the W&B API) only; it knows nothing of models or the runner.
"""

from midms.reporting.collect import collect_jobs, collect_wandb, latest_per_job
from midms.reporting.tables import format_summary, published_comparison, summary_table, write_report

__all__ = [
    "collect_jobs",
    "collect_wandb",
    "format_summary",
    "latest_per_job",
    "published_comparison",
    "summary_table",
    "write_report",
]
