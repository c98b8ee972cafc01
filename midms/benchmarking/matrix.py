"""A benchmark matrix is data: ``benchmarks/<name>.yaml`` lists models × datasets × ablations × seeds.

    name: default
    experiment: quickstart          # the preset every job starts from
    models: [copy_exemplar, cocosnet, midms]
    datasets: [synthetic]
    ablations: [none]
    seeds: [0, 1]
    overrides: [dataset.sizes.test=64]          # applied to every job
    model_overrides: {midms: [model.size=tiny]}  # applied to one model's jobs
    seconds_per_image: {midms: 1.2}              # optional: evaluation time estimates for --dry-run
    expected_pairs: 2993                         # optional: evaluation pairs when the pairing list is absent

An ablation that does not apply to a model (its ``applies_to``) is left out of that model's jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from midms.errors import UserError
from midms.resources import bench_dir, conf_dir

CONF_DIR = conf_dir()
BENCH_DIR = bench_dir()


@dataclass(frozen=True)
class Job:
    model: str
    dataset: str
    ablation: str
    seed: int
    overrides: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """Jobs differing only by seed share a group (one Hydra multirun sweeps their seeds)."""
        return f"{self.model}-{self.dataset}-{self.ablation}"

    def hydra_overrides(self, experiment: str) -> list[str]:
        return [
            f"experiment={experiment}",
            f"model={self.model}",
            f"dataset={self.dataset}",
            f"ablation={self.ablation}",
            f"seed={self.seed}",
            *self.overrides,
        ]


@dataclass
class Matrix:
    name: str
    experiment: str = "quickstart"
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    ablations: list[str] = field(default_factory=lambda: ["none"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    model_overrides: dict[str, list[str]] = field(default_factory=dict)
    seconds_per_image: dict[str, float] = field(default_factory=dict)
    expected_pairs: int | None = None

    def jobs(self, conf_dir: Path = CONF_DIR) -> list[Job]:
        jobs = []
        for model in self.models:
            extra = tuple(self.overrides) + tuple(self.model_overrides.get(model, []))
            for dataset in self.datasets:
                for ablation in self.ablations:
                    if not ablation_applies(ablation, model, conf_dir):
                        continue
                    jobs.extend(Job(model, dataset, ablation, seed, extra) for seed in self.seeds)
        return jobs


def ablation_applies(ablation: str, model: str, conf_dir: Path = CONF_DIR) -> bool:
    conf = OmegaConf.load(conf_dir / "ablation" / f"{ablation}.yaml")
    applies_to = OmegaConf.select(conf, "ablation.applies_to") or OmegaConf.select(conf, "applies_to")
    return not applies_to or model in applies_to


def load_matrix(name_or_path: str, conf_dir: Path = CONF_DIR, bench_dir: Path = BENCH_DIR) -> Matrix:
    """Read ``benchmarks/<name>.yaml`` (or a path) and check every name in it against ``conf/``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = bench_dir / f"{name_or_path}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in bench_dir.glob("*.yaml") if p.stem != "wandb_sweep")
        raise UserError(f"benchmark {name_or_path!r}: {path} does not exist; available: {available}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(raw, dict)
    unknown_keys = set(raw) - set(Matrix.__dataclass_fields__)
    if unknown_keys:
        raise UserError(f"{path}: unknown keys {sorted(unknown_keys)}; allowed: {sorted(Matrix.__dataclass_fields__)}")
    matrix = Matrix(**{"name": path.stem, **raw})
    for group, names in (("model", matrix.models), ("dataset", matrix.datasets), ("ablation", matrix.ablations)):
        for n in names:
            if not (conf_dir / group / f"{n}.yaml").exists():
                options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
                raise UserError(f"{path}: {group} {n!r} does not exist in conf/{group}/ (options: {options})")
    if not (conf_dir / "experiment" / f"{matrix.experiment}.yaml").exists():
        raise UserError(f"{path}: experiment {matrix.experiment!r} does not exist in conf/experiment/")
    return matrix
