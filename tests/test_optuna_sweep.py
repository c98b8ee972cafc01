"""Optuna sweeps (``hydra/sweeper=optuna_objective``): the direction is the objective metric's own, and a sweep
through the real entry point reports the best of its trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from e2e import TINY
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import midms  # noqa: F401 - registers the configs' resolvers, as every entry point does

CONF = Path(__file__).resolve().parents[1] / "conf"


DIRECTIONS = [("psnr", "maximize"), ("swd", "minimize"), ("swd_64", "minimize"), ("matching_accuracy", "maximize")]


@pytest.mark.parametrize(("objective", "direction"), DIRECTIONS)
def test_the_direction_is_the_objective_metrics_own(objective, direction):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/sweeper=optuna_objective", f"objective={objective}"],
                      return_hydra_config=True)  # fmt: skip
    assert OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)["direction"] == direction


def test_an_objective_that_no_metric_computes_is_an_error_naming_it():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/sweeper=optuna_objective", "objective=fidelity"],
                      return_hydra_config=True)  # fmt: skip
    with pytest.raises(Exception, match="objective=fidelity is not a value of a configured metric"):
        OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)


@pytest.mark.slow  # two end-to-end jobs: the fast set stays under 10 minutes
def test_an_optuna_sweep_keeps_the_best_trial_of_the_objective(run_entry, tmp_path):
    proc = run_entry("-m", "hydra/sweeper=optuna_objective", "hydra.sweeper.n_trials=2", *TINY, "model=copy_exemplar",
                     "metrics=pixel", "logger=none", "dataset.seed=choice(0,1)")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    psnrs = {json.loads(p.read_text())["metrics"]["psnr"] for p in sweep.rglob("results.json")}
    assert len(psnrs) == 2 and best["best_value"] == pytest.approx(max(psnrs))  # psnr: higher is better
