"""``midms-benchmark <name> --dry-run``: what a matrix's jobs need, what is missing, and a time estimate.

For every job the preset's files and folders (:mod:`midms.presets`) are listed with their source and, when present,
their SHA-256 (with the published one where a source publishes it, :data:`midms.weights.KNOWN_SHA256`); the metrics
the paper reports are set up to see whether their weights are here; and when the matrix gives
``seconds_per_image`` per model, the evaluation time is estimated from the number of evaluation pairs (the
pairing list when present, else the matrix's ``expected_pairs``). Nothing is trained or evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from midms.benchmarking.matrix import CONF_DIR, Job, Matrix
from midms.presets import needs_gpu, requirements
from midms.weights import KNOWN_SHA256, file_sha256

log = logging.getLogger("midms.benchmark")


def job_config(job: Job, experiment: str, output_dir: str = "unused") -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[*job.hydra_overrides(experiment), f"paths.output_dir={output_dir}"])


def _pairs(cfg: DictConfig, fallback: int | None) -> int | None:
    """Evaluation pairs: the lines of the split's pairing list when present, else ``fallback``."""
    for req in requirements(cfg):
        if req.name == "test_pairs" and req.present:
            return sum(1 for line in Path(req.path).read_text().splitlines() if line.strip())
    return fallback


def _metric_problems(cfg: DictConfig) -> dict[str, str]:
    from midms.runner import metric_problems

    wanted = set((cfg.get("preset") or {}).get("required_metrics") or ())
    problems = metric_problems(cfg)
    return {name: reason for name, reason in problems.items() if not wanted or name in wanted}


def dry_run(matrix: Matrix, jobs: list[Job]) -> tuple[str, bool]:
    """The report (markdown) and whether everything is present."""
    import torch

    lines = [f"# Dry run of `{matrix.name}`: {len(jobs)} job(s)", ""]
    complete = True
    total_seconds = 0.0
    for job in jobs:
        cfg = job_config(job, matrix.experiment)
        preset = cfg.get("preset")
        lines.append(f"## {job.group} (seed {job.seed}): preset {preset.name if preset else 'none'}")
        if needs_gpu(cfg):
            gpu = torch.cuda.is_available()
            complete &= gpu
            lines.append(f"- {'ok     ' if gpu else 'MISSING'} a CUDA GPU")
        for req in requirements(cfg):
            complete &= req.present
            known = KNOWN_SHA256.get(Path(req.path).name)
            if req.present and Path(req.path).is_file():
                digest = file_sha256(req.path)
                check = "" if not known else (" (the published hash)" if digest == known else f" (published: {known})")
                state = f"sha256 {digest}{check}"
            else:
                state = f"expected sha256 {known}" if known else ("folder" if req.present else "")
            mark = "ok     " if req.present else "MISSING"
            lines.append(f"- {mark} {req.what}: `{req.path}` ({req.source}){'; ' + state if state else ''}")
        for name, reason in _metric_problems(cfg).items():
            complete = False
            lines.append(f"- MISSING for the metric {name}: {reason}")
        per_image = (matrix.seconds_per_image or {}).get(job.model)
        pairs = _pairs(cfg, matrix.expected_pairs)
        if per_image and pairs:
            total_seconds += per_image * pairs
            lines.append(
                f"- estimate: {pairs} pairs × {per_image:g} s an image ≈ {per_image * pairs / 60:.0f} min on one GPU"
            )
        lines.append("")
    if total_seconds:
        lines.append(
            f"Estimated GPU time for the whole matrix: {total_seconds / 3600:.1f} h "
            "(the matrix's seconds_per_image: an estimate, not a measurement)."
        )
    lines.append("Everything is here." if complete else "Some files are missing: put each where it is named.")
    return "\n".join(lines) + "\n", complete
