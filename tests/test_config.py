"""The config tree: every model × dataset composes, presets compose, and the pieces instantiate."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from midms.config_check import check_option_types
from midms.data.build import build_datamodule
from midms.errors import UserError
from midms.runner import check_config

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))


def _compose(*overrides: str, hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides], return_hydra_config=hydra_cfg)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_model_and_dataset_compose(model, dataset):
    cfg = _compose(f"model={model}", f"dataset={dataset}")
    assert cfg.model.name == model and cfg.dataset.name == dataset
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg.dataset._target_ and cfg.model.module._target_ and "_target_" not in cfg.dataset.datamodule
    check_option_types(cfg)  # the typed options of every composition pass (no false alarm)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose(experiment):
    cfg = _compose(f"experiment={experiment}")
    OmegaConf.resolve(cfg)
    check_option_types(cfg)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_every_ablation_names_existing_models():
    for ablation in ABLATIONS:
        cfg = _compose(f"ablation={ablation}")
        for model in cfg.ablation.applies_to or []:
            assert model in MODELS, f"ablation {ablation} applies to unknown model {model}"


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
@pytest.mark.parametrize("logger", ["wandb", "csv", "none"])
def test_trainer_and_logger_options_compose(trainer, logger):
    cfg = _compose(f"trainer={trainer}", f"logger={logger}")
    assert cfg.trainer.accelerator in ("cpu", "gpu")
    assert str(cfg.trainer.get("strategy", "")).startswith("ddp") == (trainer == "ddp")
    assert set(cfg.logger or {}) == ({logger} if logger != "none" else set())


@pytest.mark.parametrize("launcher", ["submitit_local", "submitit_slurm"])
def test_launcher_configs_compose(launcher):
    cfg = _compose(f"hydra/launcher={launcher}", hydra_cfg=True)
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher" if launcher == "submitit_local" else "SlurmLauncher")
    assert cfg.hydra.job.chdir is False


def test_defaults_are_the_quickstart_and_paths_follow_the_environment(monkeypatch):
    monkeypatch.setenv("MIDMS_DATA", "/datasets")
    cfg = _compose()
    assert cfg.name == "quickstart" and cfg.model.name == "midms" and cfg.dataset.name == "synthetic"
    assert cfg.paths.data_dir == "/datasets"


def test_synthetic_datamodule_and_model_instantiate():
    cfg = _compose("model=copy_exemplar", "dataset.image_size=32", "dataset.input=labels")
    dm = build_datamodule(cfg.dataset)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=dm.spec)
    batch = next(iter(dm.eval_dataloader()))
    assert batch["semantics"].shape[1:] == (6, 32, 32)
    assert model.translate(batch).shape == batch["image"].shape


def test_ablation_for_another_model_is_rejected():
    cfg = _compose("model=copy_exemplar")
    cfg.ablation.applies_to = ["midms"]
    cfg.ablation.name = "no_confidence"
    with pytest.raises(UserError, match="ablation=no_confidence applies to model=midms, not to model=copy_exemplar"):
        check_config(cfg)


def test_synthetic_hard_sets_its_options_and_shares_the_synthetic_model_settings():
    cfg = _compose("model=cocosnet", "dataset=synthetic_hard", "dataset.image_size=32")
    OmegaConf.resolve(cfg)
    ds = build_datamodule(cfg.dataset).eval_dataset
    assert (ds.num_classes, ds.layout, ds.thin, ds.texture_detail) == (12, "scattered", True, 16)
    assert ds.texture_strength == (0.25, 0.5)
    easy = _compose("model=cocosnet", "dataset=synthetic")
    OmegaConf.resolve(easy)
    assert cfg.model.module.settings == easy.model.module.settings
