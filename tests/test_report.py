"""midms-report: one report format for a sweep folder and a W&B project (mean ± std over seeds, directions,
the jobs that did not complete), from the run records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from midms.record import RunRecord
from midms.reporting import collect_jobs, collect_wandb
from midms.reporting.cli import main
from midms.reporting.plots import sample_grid

PSNR_INFO = {"metric": "psnr", "direction": "higher", "headline": True}


def _job(root, name, **fields):
    RunRecord(**fields).write(root / name / "results.json")


def _sweep(root):
    psnr = {"psnr": PSNR_INFO}
    _job(root, "0", status="completed", model="a", dataset="synthetic", ablation="none", seed=0, config_hash="h0",
         metrics={"psnr": 20.0}, metric_info=psnr)  # fmt: skip
    _job(root, "1", status="completed", model="a", dataset="synthetic", ablation="none", seed=1, config_hash="h1",
         metrics={"psnr": 22.0}, metric_info=psnr, skipped={"fid": "weights missing"})  # fmt: skip
    _job(root, "2", status="failed", model="c", dataset="synthetic", ablation="none", seed=0, config_hash="h2",
         error="UserError: bad\nmore")  # fmt: skip
    (root / "3").mkdir()
    (root / "3" / "results.json").write_text("{not json")


def test_one_row_per_job_with_failures_as_rows(tmp_path):
    _sweep(tmp_path)
    df, info = collect_jobs(tmp_path)
    assert list(df["job"]) == ["0", "1", "2", "3"] and info["psnr"]["direction"] == "higher"
    assert list(df["status"]) == ["completed", "completed", "failed", "failed"]
    assert df.loc[0, "psnr"] == 20.0 and pd.isna(df.loc[2, "psnr"])
    assert df.loc[1, "skipped"] == "fid: weights missing"
    assert df.loc[2, "error"] == "UserError: bad" and "unreadable" in df.loc[3, "error"]


def test_the_report_of_a_sweep_is_mean_and_std_over_seeds_with_the_failed_jobs(tmp_path, capsys):
    _sweep(tmp_path)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "report"
    assert out == (report / "table.md").read_text()
    assert "psnr ↑" in out and "**21.00 ± 1.41**" in out  # mean ± std of 20 and 22, the best of its column
    assert "4 jobs: 2 completed, 2 failed, 0 interrupted" in out
    assert "UserError: bad" in out and "unreadable" in out  # the jobs that did not complete, with their error
    assert len(pd.read_csv(report / "results.csv")) == 4 and (report / "plots" / "psnr.png").exists()


def _tile(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), rgb).save(path)


@pytest.mark.parametrize("with_target", [True, False])
def test_the_sample_grid_puts_each_column_in_its_place(tmp_path, with_target):
    """Columns: the input as the run drew it, the real image, the exemplar, the ground truth where the dataset has one,
    then one seed of each model in name order; a missing sample is a black tile; 8-px tiles are drawn 16 times larger
    (cells of at least 128 px), each column with its caption band above it; a relative path is the record's folder's."""
    ref, names = tmp_path / "ref", ["test_00000", "test_00001"]
    for n in names:
        _tile(tmp_path / "a0" / "eval" / "inputs" / f"{n}.png", (90, 90, 90))
        _tile(ref / "image" / f"{n}.png", (10, 0, 0))
        _tile(ref / "exemplar" / f"{n}.png", (0, 20, 0))
        if with_target:
            _tile(ref / "target" / f"{n}.png", (0, 0, 30))
    jobs = []
    for model, seed, rgb in [("b", 0, (40, 40, 0)), ("a", 1, (0, 60, 60)), ("a", 0, (70, 0, 70))]:
        samples = tmp_path / f"{model}{seed}" / "samples"
        _tile(samples / f"{names[0]}.png", rgb)  # the second input has no sample
        jobs.append({"status": "completed", "dataset": "synthetic", "model": model, "ablation": "none", "seed": seed,
                     "run_dir": str(tmp_path / f"{model}{seed}"), "files.samples": "samples",
                     "files.eval": str(tmp_path / f"{model}{seed}" / "eval"), "files.reference": str(ref)})  # fmt: skip
    (tmp_path / "out").mkdir()
    (path,) = sample_grid(pd.DataFrame(jobs), tmp_path / "out")
    grid = np.asarray(Image.open(path).convert("RGB"))
    expected = [(90, 90, 90), (10, 0, 0), (0, 20, 0)] + ([(0, 0, 30)] if with_target else [])
    expected += [(70, 0, 70), (40, 40, 0)]
    cell = 128
    assert grid.shape == (28 + 2 * cell, cell * len(expected), 3)
    assert (grid[:28] == 255).mean() > 0.8  # the caption band
    for col, rgb in enumerate(expected):
        assert tuple(grid[28 + cell // 2, cell * col + cell // 2]) == rgb, col
        second = rgb if col < len(expected) - 2 else (0, 0, 0)
        assert tuple(grid[28 + cell + cell // 2, cell * col + cell // 2]) == second, col


def test_captions_break_between_words_and_a_missing_reference_is_named(tmp_path, caplog):
    from midms.reporting.plots import _lines

    assert _lines("copy_exemplar no_confidence", 21) == ["copy_exemplar", "no_confidence"]
    assert _lines("midms interleave_steps_4", 21) == ["midms", "interleave_steps_4"]
    job = {"status": "completed", "dataset": "d", "model": "m", "ablation": "none", "seed": 0}
    jobs = pd.DataFrame([{**job, "files.samples": str(tmp_path / "s"), "files.reference": str(tmp_path / "gone")}])
    with caplog.at_level("WARNING", logger="midms.reporting.plots"):
        assert sample_grid(jobs, tmp_path) == []
    assert str(tmp_path / "gone" / "exemplar") in caplog.text


def test_empty_folder_is_an_error(tmp_path):
    assert main([str(tmp_path)]) == 2


class _FakeRun:
    def __init__(self, rid, model, psnr, seed=0, job_type="benchmark", group="g", state="finished", status="completed"):
        self.id, self.job_type, self.group, self.state = rid, job_type, group, state
        self.config = {"model": {"name": model}, "dataset": {"name": "synthetic"}, "ablation": {"name": "none"},
                       "seed": seed}  # fmt: skip
        self.summary = {"eval/psnr": psnr, "train/loss": 0.1, "eval_info/metric_info": {"psnr": PSNR_INFO}}
        if status:
            self.summary["status"] = status


class _FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, project, filters=None):
        self.calls.append((project, filters))
        return [r for r in self._runs if not filters or r.group == filters.get("group")]


def test_a_wandb_project_gives_the_same_rows_and_report(tmp_path, monkeypatch, capsys):
    runs = [_FakeRun("r1", "a", 20.0), _FakeRun("r2", "a", 22.0, seed=1), _FakeRun("s", "a", 0, job_type="summary"),
            _FakeRun("r3", "b", 11.0, state="crashed", status=None)]  # fmt: skip
    api = _FakeApi(runs)
    df, info = collect_wandb("team/proj", group="g", api=api)
    assert api.calls == [("team/proj", {"group": "g"})] and info == {"psnr": PSNR_INFO}
    assert list(df["model"]) == ["a", "a", "b"] and list(df["psnr"]) == [20.0, 22.0, 11.0]
    assert list(df["status"]) == ["completed", "completed", "interrupted"] and "train/loss" not in df
    import midms.reporting.cli as cli

    monkeypatch.setattr(cli, "collect_wandb", lambda project, group: collect_wandb(project, group, api=api))
    assert main(["--wandb", "team/proj", "--group", "g", "--out", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "**21.00 ± 1.41**" in out and "interrupted" in out  # the same table format as a sweep folder's


def test_wandb_unreachable_is_a_clear_error(monkeypatch, caplog):
    import midms.reporting.cli as cli

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(cli, "collect_wandb", offline)
    assert main(["--wandb", "team/proj"]) == 2 and "cannot read team/proj: no network" in caplog.text


def test_runs_under_different_protocols_are_never_pooled_or_ranked_together(tmp_path):
    """32 and 128 evaluation pairs of one dataset: two groups, each ranked on its own, the difference named; one
    precision per column; published rows only for the datasets that were run."""
    from midms.reporting.tables import format_summary, published_comparison, summary_table

    def job(name, model, seed, pairs, psnr, ssim):
        proto = {"dataset_key": f"synthetic-n{pairs}", "num_images": pairs, "image_format": "png"}
        _job(tmp_path, name, status="completed", model=model, dataset="synthetic", ablation="none", seed=seed,
             config_hash=name, metrics={"psnr": psnr, "ssim": ssim}, protocol=proto,
             metric_info={"psnr": PSNR_INFO, "ssim": {**PSNR_INFO, "metric": "ssim"}})  # fmt: skip

    job("a32s0", "midms", 0, 32, 21.23, 0.4)
    job("a32s1", "midms", 1, 32, 21.0, 0.41)
    job("a128", "midms", 0, 128, 16.7, 0.39)
    job("c128", "copy_exemplar", 0, 128, 14.4, 0.336)
    jobs, info = collect_jobs(tmp_path)
    table = summary_table(jobs, info)
    assert sorted(zip(table["model"], table["seeds"], strict=True)) == [
        ("copy_exemplar", 1),
        ("midms", 1),
        ("midms", 2),
    ]
    text = format_summary(table)
    body = [line for line in text.splitlines()[2:] if line.startswith("|")]
    rows = {(line.split("|")[1].strip(), line.split("|")[4].strip()): line for line in body}
    assert "P2: dataset_key=synthetic-n32, num_images=32" in text and "P1: dataset_key=synthetic-n128" in text
    assert "**21.12 ± 0.16**" in rows[("midms", "P2")]  # the 32-pair runs: the best of their own protocol only
    assert "**16.70**" in rows[("midms", "P1")] and "| 14.40 |" in rows[("copy_exemplar", "P1")]  # one precision
    columns = ["method", "dataset", "metric", "value", "protocol", "source", "verified"]
    published = pd.DataFrame([["midms", "synthetic", "psnr", 20.0, "unknown", "s", "no"],
                              ["midms", "celebahq", "fid", 15.67, "unknown", "s", "no"]], columns=columns)  # fmt: skip
    compared = published_comparison(jobs, published)
    assert list(compared["dataset"]) == ["synthetic", "synthetic"]  # celebahq was not run; one row per protocol
    assert sorted(compared["ours"]) == pytest.approx([16.7, 21.115])


def test_the_plots_label_their_axis_with_the_unit_and_range_on_the_values(tmp_path, monkeypatch):
    """14.40 and 14.56 dB must not look equal: the axis follows the values (not from 0), names its unit and shows each
    seed as a point beside the mean ± std."""
    import matplotlib.figure

    from midms.reporting.plots import bar_charts
    from midms.reporting.tables import summary_table

    psnr = {"psnr": {**PSNR_INFO, "unit": "dB"}}
    for name, model, seed, value in [("a0", "a", 0, 14.40), ("b0", "b", 0, 14.50), ("b1", "b", 1, 14.62)]:
        _job(tmp_path, name, status="completed", model=model, dataset="synthetic", ablation="none", seed=seed,
             config_hash=name, metrics={"psnr": value}, metric_info=psnr)  # fmt: skip
    jobs, info = collect_jobs(tmp_path)
    seen = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: seen.append(fig.axes[0]))
    bar_charts(summary_table(jobs, info), tmp_path, jobs, info)
    (ax,) = seen
    low, high = ax.get_ylim()
    assert 14.0 < low < 14.40 and 14.62 < high < 15.0 and ax.get_ylabel() == "psnr (dB)"
    points = [p for c in ax.collections for p in c.get_offsets().tolist() if len(c.get_offsets()) == 2]
    assert sorted(y for _, y in points) == pytest.approx([14.50, 14.62])  # model b's two seeds
