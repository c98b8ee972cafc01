"""The report: one row per results.json, failed and unreadable jobs as rows, CSV and Markdown written."""

from __future__ import annotations

import json

import pandas as pd

from midms.report import main
from midms.reporting.table import collect


def _job(root, name, **res):
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(res))


def test_one_row_per_job_with_failures_as_rows(tmp_path, capsys):
    _job(tmp_path, "0", status="completed", model="a", dataset="synthetic", ablation="none", metrics={"psnr": 20.5})
    _job(tmp_path, "1", status="completed", model="b", dataset="synthetic", ablation="none", metrics={"psnr": 11.0},
         skipped={"fid": "weights missing"})  # fmt: skip
    _job(tmp_path, "2", status="failed", model="c", dataset="synthetic", ablation="none", error="UserError: bad\nmore")
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "results.json").write_text("{not json")
    df = collect(tmp_path)
    assert list(df["job"]) == ["0", "1", "2", "3"]
    assert list(df["status"]) == ["completed", "completed", "failed", "failed"]
    assert df.loc[0, "psnr"] == 20.5 and pd.isna(df.loc[2, "psnr"])
    assert df.loc[1, "skipped"] == "fid: weights missing"
    assert df.loc[2, "error"] == "UserError: bad" and "unreadable" in df.loc[3, "error"]

    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "20.5" in out and "failed" in out
    written = pd.read_csv(tmp_path / "report.csv")
    md = (tmp_path / "report.md").read_text()
    assert len(written) == 4 and md.split("|")[1].strip() == "job" and md.count("\n") == 6  # header, rule, 4 rows


def test_empty_folder_is_an_error(tmp_path):
    assert main([str(tmp_path)]) == 2


class _FakeRun:
    def __init__(self, rid, model, psnr, job_type="benchmark", group="g"):
        self.id, self.job_type, self.group, self.state = rid, job_type, group, "finished"
        self.config = {
            "model": {"name": model},
            "dataset": {"name": "synthetic"},
            "ablation": {"name": "none"},
            "seed": 0,
        }
        self.summary = {"eval/psnr": psnr, "status": "completed", "train/loss": 0.1}


class _FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, project, filters=None):
        self.calls.append((project, filters))
        return [r for r in self._runs if not filters or r.group == filters.get("group")]


def test_wandb_project_gives_the_same_table():
    from midms.reporting.table import collect_wandb

    api = _FakeApi([_FakeRun("r1", "a", 20.0), _FakeRun("r2", "b", 11.0), _FakeRun("s", "a", 0, job_type="summary")])
    df = collect_wandb("team/proj", group="g", api=api)
    assert api.calls == [("team/proj", {"group": "g"})]
    assert list(df["model"]) == ["a", "b"] and list(df["psnr"]) == [20.0, 11.0]
    assert set(df["status"]) == {"completed"} and "train/loss" not in df


def test_wandb_unreachable_is_a_clear_error(monkeypatch, caplog):
    import midms.report as report

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(report, "collect_wandb", offline)
    assert main(["--wandb", "team/proj"]) == 2 and "cannot read team/proj: no network" in caplog.text
