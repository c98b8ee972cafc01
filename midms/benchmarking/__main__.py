"""``python -m midms.benchmarking <name>`` (``make benchmark BENCH=<name>``): run a matrix, then aggregate.

Every job is a job of a Hydra multirun of ``midms.train`` (``run.py``; one multirun per model × dataset × ablation,
sweeping the seeds), so launchers apply unchanged (``--launcher submitit_local`` runs jobs in parallel,
``submitit_slurm`` on a cluster). A job whose completed ``results.json`` with the same config hash exists
is skipped (a half-finished benchmark resumes); ``--force`` re-runs everything. A failed job is a row
with its error. The aggregate goes to ``benchmarks/results/<name>/<date>/`` under the current directory.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from midms.benchmarking.matrix import CONF_DIR, Job, Matrix, load_matrix
from midms.errors import UserError
from midms.provenance import config_hash
from midms.record import RunRecord, iter_records

log = logging.getLogger("midms.benchmark")


def job_hash(job: Job, experiment: str) -> str:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*job.hydra_overrides(experiment), "paths.output_dir=unused"])
    return config_hash(cfg)


def completed_hashes(runs_dir: Path) -> set[str]:
    records = (rec for _, rec in iter_records(runs_dir) if isinstance(rec, RunRecord))
    return {rec.config_hash for rec in records if rec.status == "completed"}


def aggregate(
    runs_dir: Path, out_dir: Path, name: str, config_hashes: set[str] | None = None
) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    """The report of a benchmark's runs; with ``config_hashes`` only the jobs of the matrix as it is now (runs
    of an earlier version of the matrix stay on disk but are not averaged with the current ones)."""
    from midms.reporting import collect_jobs, write_report

    rows, info = collect_jobs(runs_dir)
    if config_hashes is not None and "config_hash" in rows:
        rows = rows[rows["config_hash"].isin(config_hashes) | rows["config_hash"].isna()].reset_index(drop=True)
    return write_report(rows, info, out_dir, f"Benchmark `{name}`"), rows, info


def run_group(jobs: list[Job], matrix: Matrix, runs_dir: Path, launcher: str | None) -> int:
    """One Hydra multirun for jobs that differ only by seed; returns its exit code."""
    first = jobs[0]
    seeds = ",".join(str(j.seed) for j in jobs)
    overrides = [o for o in first.hydra_overrides(matrix.experiment) if not o.startswith("seed=")]
    cmd = [
        sys.executable,
        "-m",
        "midms.train",
        "-m",
        *overrides,
        f"seed={seeds}",
        f"hydra.sweep.dir={runs_dir / first.group / time.strftime('%Y%m%d-%H%M%S')}",
        "hydra.sweep.subdir=seed_${seed}",
        f"++logger.wandb.group={matrix.name}",
        "++logger.wandb.job_type=benchmark",
    ]
    if launcher:
        cmd.append(f"hydra/launcher={launcher}")
    log.info("running %s (seeds %s)", first.group, seeds)
    return subprocess.run(cmd).returncode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="midms-benchmark",
        description="Run a benchmark matrix (benchmarks/<name>.yaml: models × datasets × ablations × seeds), one Hydra "
        "multirun per model, dataset and ablation, then aggregate its tables, plots and W&B workspace.",
    )
    p.add_argument("name", nargs="?", default="default", help="benchmarks/<name>.yaml (default: default)")
    p.add_argument("--launcher", default=None, help="hydra/launcher option: submitit_local, submitit_slurm")
    p.add_argument("--force", action="store_true", help="re-run jobs that already have results")
    p.add_argument(
        "--results-dir",
        default="benchmarks/results",
        help="where runs and aggregates go: <results-dir>/<name>/ (default: benchmarks/results)",
    )
    p.add_argument("--no-wandb-summary", action="store_true", help="do not log the summary run to W&B")
    p.add_argument("--dry-run", action="store_true", help="list what the jobs need and what is missing; run nothing")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job (e.g. logger=csv)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        matrix = load_matrix(args.name)
    except UserError as e:
        log.error("%s", e)
        return 2
    matrix.overrides = [*matrix.overrides, *args.overrides]  # part of every job, and so of its config hash
    bench_root = Path(args.results_dir) / matrix.name
    runs_dir = bench_root / "runs"
    jobs = matrix.jobs()
    if args.dry_run:
        from midms.benchmarking.dry_run import dry_run

        report, complete = dry_run(matrix, jobs)
        sys.stdout.write(report)
        return 0 if complete else 1
    done = set() if args.force else completed_hashes(runs_dir)
    todo = [j for j in jobs if args.force or job_hash(j, matrix.experiment) not in done]
    log.info(
        "benchmark %s: %d jobs, %d already done, %d to run", matrix.name, len(jobs), len(jobs) - len(todo), len(todo)
    )
    groups: dict[str, list[Job]] = {}
    for job in todo:
        groups.setdefault(job.group, []).append(job)
    failed_groups = [g for g, js in groups.items() if run_group(js, matrix, runs_dir, args.launcher)]

    hashes = {job_hash(j, matrix.experiment) for j in jobs}
    out_dir, rows, info = aggregate(runs_dir, bench_root / time.strftime("%Y-%m-%d"), matrix.name, hashes)
    log.info("aggregate written to %s", out_dir)
    sys.stdout.write((out_dir / "table.md").read_text())
    if not args.no_wandb_summary:
        from midms.tracking.loggers import wandb_mode
        from midms.tracking.summary import log_summary_run
        from midms.tracking.workspace import publish_workspace, workspace_spec

        log_summary_run(matrix.name, out_dir)
        if rows.get("wandb_group", pd.Series(dtype=object)).notna().any():
            spec = workspace_spec(f"benchmark {matrix.name}", rows, info)
            publish_workspace(spec, out_dir, online=wandb_mode(None) == "online")
    if failed_groups:
        log.warning("groups with failed jobs: %s (their rows carry the error)", failed_groups)
    return 1 if failed_groups else 0


if __name__ == "__main__":
    sys.exit(main())
