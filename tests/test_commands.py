"""The command lines: every option described by --help, a wrong value refused in one paragraph before any work,
each log line printed once, and a trained checkpoint evaluated with train=false without the losses' networks."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest
import yaml
from e2e import TINY

from midms.config_check import check_option_types
from midms.errors import UserError
from midms.record import RunRecord

ROOT = Path(__file__).resolve().parents[1]
ARGPARSE_COMMANDS = {  # the installed commands built on argparse (pyproject's [project.scripts])
    "midms-benchmark": "midms.benchmarking.__main__",
    "midms-eval": "midms.evaluation.score_folders",
    "midms-report": "midms.reporting.cli",
    "midms-data-check": "midms.data.check",
}


def test_the_argparse_commands_are_the_installed_ones_but_midms_train():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {*ARGPARSE_COMMANDS, "midms-train"}  # midms-train's help is Hydra's (below)


@pytest.mark.parametrize("command", sorted(ARGPARSE_COMMANDS))
def test_every_option_of_a_command_is_described(command):
    parser = importlib.import_module(ARGPARSE_COMMANDS[command]).build_parser()
    assert parser.prog == command and parser.description
    undescribed = [a.dest for a in parser._actions if not a.help]
    assert undescribed == []


def test_midms_train_help_names_every_top_level_option_and_group(run_entry):
    proc = run_entry("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())
    options = [k for k in config if k not in ("defaults", "evaluation")]
    options += [f"evaluation.{k}" for k in config["evaluation"]]
    for option in options:
        assert f"  {option}=" in proc.stdout, option
    groups = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("__pycache__", "hydra"))
    for group in groups:
        assert f"\n{group}: " in proc.stdout, group  # Hydra's list of the group's options
    for group in ("launcher", "sweeper"):  # the project's own options of Hydra's groups
        for option in (ROOT / "conf" / "hydra" / group).glob("*.yaml"):
            assert option.stem in proc.stdout, f"hydra/{group}={option.stem}"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("seed=abc", "seed=abc"),
        ("train=maybe", "train=maybe"),
        ("evaluation.image_format=tif", "image_format=tif"),
        ("dataset.datamodule.batch_size=1.5", "batch_size=1.5"),
    ],  # fmt: skip
)
def test_a_wrong_option_value_is_one_paragraph(override, named):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=/tmp/unused", override])
    with pytest.raises(UserError) as err:
        check_option_types(cfg)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_wrong_value_on_the_command_line_stops_before_any_work(run_entry, tmp_path):
    start = time.perf_counter()
    proc = run_entry("seed=abc", "model=copy_exemplar", timeout=60)
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "seed=abc" in out and "expected an integer" in out
    assert "Traceback" not in out
    assert not list((tmp_path / "logs").rglob("results.json"))  # no job was started
    assert elapsed < 30  # the config is checked before torch, the data or the model


@pytest.mark.slow  # a training job, then an evaluation job, through run.py (19 s)
def test_a_trained_checkpoint_is_evaluated_with_train_false_and_no_loss_network(run_entry, tmp_path):
    """Train a tiny CoCosNet, then evaluate its last.ckpt with train=false: the same weights give the same scores
    (the evaluation is seeded), and the training losses' VGG19 is neither built nor asked for."""
    tiny = [o for o in TINY if not o.startswith("dataset.image_size=")]
    common = [*tiny, "dataset.image_size=64", "model=cocosnet", "logger=none", "metrics=pixel",
              "model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]"]  # fmt: skip
    trained = run_entry(*common, f"hydra.run.dir={tmp_path / 'trained'}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = trained.stdout + trained.stderr
    assert out.count("Seed set to") == 1  # Lightning's lines print once (not also through its own handler)
    first = RunRecord.read(tmp_path / "trained" / "results.json")
    assert first.model_protocol["vgg_weights"] == "random"
    ckpt = tmp_path / "trained" / "checkpoints" / "last.ckpt"
    again = run_entry(*common, "train=false", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'evaluated'}")
    assert again.returncode == 0, again.stderr[-3000:]
    second = RunRecord.read(tmp_path / "evaluated" / "results.json")
    assert second.model_protocol["vgg_weights"] is None and second.train is None
    # (the model as built, ignoring the checkpoint, would score its random initialisation instead)
    assert second.metrics["psnr"] == first.metrics["psnr"] and second.metrics["ssim"] == first.metrics["ssim"]
