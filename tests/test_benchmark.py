"""The benchmark: matrix expansion, resume by config hash, the aggregate table and published numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from e2e import TINY
from omegaconf import OmegaConf

from midms.benchmarking.__main__ import aggregate, completed_hashes, job_hash
from midms.benchmarking.matrix import Job, Matrix, load_matrix
from midms.errors import UserError
from midms.reporting import collect_jobs, published_comparison, summary_table


def test_matrix_expands_and_leaves_out_ablations_of_other_models(tmp_path):
    conf = tmp_path / "conf"
    (conf / "ablation").mkdir(parents=True)
    (conf / "ablation" / "none.yaml").write_text("name: none\napplies_to: null\n")
    (conf / "ablation" / "only_b.yaml").write_text(
        "# @package _global_\nablation:\n  name: only_b\n  applies_to: [b]\n"
    )
    m = Matrix(name="t", models=["a", "b"], datasets=["d"], ablations=["none", "only_b"], seeds=[0, 1])
    jobs = m.jobs(conf)
    assert {(j.model, j.ablation) for j in jobs} == {("a", "none"), ("b", "none"), ("b", "only_b")}
    assert len(jobs) == 6 and {j.group for j in jobs} == {"a-d-none", "b-d-none", "b-d-only_b"}


def test_load_matrix_rejects_unknown_names(tmp_path):
    (tmp_path / "bad.yaml").write_text("models: [no_such_model]\ndatasets: [synthetic]\n")
    with pytest.raises(UserError, match="model 'no_such_model' does not exist"):
        load_matrix(str(tmp_path / "bad.yaml"))
    (tmp_path / "typo.yaml").write_text("modles: [copy_exemplar]\n")
    with pytest.raises(UserError, match="unknown keys"):
        load_matrix(str(tmp_path / "typo.yaml"))
    assert load_matrix("default").models  # the shipped default matrix is valid


def _job_config(matrix, job):
    from hydra import compose, initialize_config_dir

    from midms.benchmarking.matrix import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *job.hydra_overrides(matrix.experiment)])


def test_the_cpu_matrices_compose_and_the_sampler_ablations_share_one_training():
    default = load_matrix("default")
    (midms,) = [j for j in default.jobs() if j.model == "midms" and j.seed == 0]
    trained = _job_config(default, midms)
    assert trained.dataset.sizes.train == 4096 and trained.trainer.max_steps == 320
    ablations = load_matrix("ablations_midms")
    configs = {j.ablation: _job_config(ablations, j) for j in ablations.jobs()}
    assert set(configs) == {"none", "no_confidence", "no_refine", "ddim_steps_32"}
    for name, cfg in configs.items():  # everything that shapes training is the default matrix's MIDMs job's
        for key in ("model.module.training", "model.module.prior_stage", "trainer.max_steps", "dataset"):
            assert OmegaConf.select(cfg, key) == OmegaConf.select(trained, key), (name, key)
    sampler = {name: cfg.model.sampler for name, cfg in configs.items()}
    assert sampler["none"].confidence and not sampler["no_confidence"].confidence
    assert sampler["none"].refine and not sampler["no_refine"].refine
    assert sampler["none"].ddim_steps == 16 and sampler["ddim_steps_32"].ddim_steps == 32


def test_job_hash_equals_the_hash_the_run_records(run_entry, tmp_path):
    """Resume relies on it: the hash computed before a job runs is the one its results.json carries."""
    job = Job("copy_exemplar", "synthetic", "none", 3, tuple(TINY))
    proc = run_entry(*job.hydra_overrides("quickstart"), "logger=none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp_path / "logs").rglob("results.json")
    recorded = json.loads(path.read_text())["config_hash"]
    assert job_hash(job, "quickstart") == recorded
    assert completed_hashes(tmp_path / "logs") == {recorded}
    assert job_hash(Job("copy_exemplar", "synthetic", "none", 4, tuple(TINY)), "quickstart") != recorded


def _result(root: Path, name: str, **res) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(res))


def _fake_runs(root: Path) -> None:
    proto = {"image_format": "jpg", "image_size": 256, "metrics": {"fid.mode": "legacy_pytorch"}}
    directions = {"fid": "lower", "psnr": "higher"}
    for seed, (fid, psnr) in enumerate([(10.0, 20.0), (14.0, 22.0)]):
        _result(root, f"a{seed}", status="completed", model="cocosnet", dataset="celebahq", ablation="none", seed=seed,
                metrics={"fid": fid, "psnr": psnr}, directions=directions, protocol=proto)  # fmt: skip
    _result(root, "b0", status="completed", model="copy_exemplar", dataset="celebahq", ablation="none", seed=0,
            metrics={"fid": 30.0, "psnr": 25.0}, directions=directions, protocol=proto)  # fmt: skip
    _result(root, "c0", status="failed", model="midms", dataset="celebahq", ablation="none", seed=0, error="boom")


def test_summary_is_mean_and_std_over_seeds_with_directions(tmp_path):
    _fake_runs(tmp_path)
    jobs, directions = collect_jobs(tmp_path)
    assert len(jobs) == 4 and set(jobs["status"]) == {"completed", "failed"}
    table = summary_table(jobs, directions).set_index("model")
    assert table.loc["cocosnet", "fid_mean"] == 12.0
    assert table.loc["cocosnet", "fid_std"] == pytest.approx(pd.Series([10.0, 14.0]).std())
    assert table.loc["cocosnet", "seeds"] == 2 and "midms" not in table.index

    out, _, _ = aggregate(tmp_path, tmp_path / "out", "t")
    md = (out / "table.md").read_text()
    assert "fid ↓" in md and "psnr ↑" in md
    assert "**12.00 ± 2.83**" in md  # lowest FID is best (four significant digits of the column's largest, 30)
    assert "**25.00**" in md  # highest PSNR is best (one seed: no std)
    assert "boom" in md  # the failed job is a row with its error
    assert len(pd.read_csv(out / "results.csv")) == 4
    assert (out / "plots" / "fid.png").exists() and (out / "plots" / "psnr.png").exists()


def test_published_numbers_are_compared_only_where_the_protocol_matches(tmp_path):
    _fake_runs(tmp_path)
    jobs, _ = collect_jobs(tmp_path)
    published = pd.DataFrame(
        [
            ["cocosnet", "celebahq", "fid", 14.3, "impl=pytorch-fid;format=jpg;size=256", "s", "yes"],
            ["cocosnet", "celebahq", "fid", 16.95, "impl=pytorch-fid;format=png;size=256", "s", "yes"],
            ["midms", "celebahq", "fid", 15.67, "unknown", "s", "no"],
            ["copy_exemplar", "celebahq", "fid", 1.0, "unknown", "s", "no"],
        ],
        columns=["method", "dataset", "metric", "value", "protocol", "source", "verified"],
    )
    cmp = published_comparison(jobs, published)
    assert list(cmp["comparison"]) == ["protocol matches", "protocol differs", "not run", "protocol unknown"]
    assert cmp.loc[0, "difference"] == pytest.approx(12.0 - 14.3)
    assert pd.isna(cmp.loc[1, "difference"])


def test_a_rerun_job_counts_once_its_newest_run(tmp_path):
    import json

    for folder, started, psnr in (("old", "2026-01-01T10:00:00", 10.0), ("new", "2026-01-02T10:00:00", 12.0)):
        job = tmp_path / folder
        job.mkdir()
        res = {"status": "completed", "model": "m", "dataset": "synthetic", "ablation": "none", "seed": 0,
               "config_hash": "abc", "started": started, "metrics": {"psnr": psnr}}  # fmt: skip
        (job / "results.json").write_text(json.dumps(res))
    jobs, _ = collect_jobs(tmp_path)
    assert len(jobs) == 1 and jobs["psnr"].tolist() == [12.0]


def test_the_aggregate_keeps_only_the_jobs_of_the_matrix_as_it_is(tmp_path):
    import json

    for folder, config_hash, psnr in (("then", "old", 10.0), ("now", "new", 12.0)):
        job = tmp_path / "runs" / folder
        job.mkdir(parents=True)
        res = {"status": "completed", "model": "m", "dataset": "synthetic", "ablation": "none", "seed": 0,
               "config_hash": config_hash, "started": "2026", "metrics": {"psnr": psnr}}  # fmt: skip
        (job / "results.json").write_text(json.dumps(res))
    out, _, _ = aggregate(tmp_path / "runs", tmp_path / "out", "t", config_hashes={"new"})
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and "12.0" in rows[1]
