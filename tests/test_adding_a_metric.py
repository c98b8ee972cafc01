"""The metric contract: a new metric is one module plus one config entry, and it reaches results.json (with what
it declared), the report's table and the W&B summary without touching the suite's code. The module and the entry
are the code blocks of ``docs/guides/adding-a-metric.md``, so the guide cannot drift from the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from e2e import TINY
from PIL import Image

from midms.reporting.cli import main as report

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def _guide_blocks() -> dict[str, str]:
    """The fenced blocks of the guide, keyed by their first line (``# my_metrics/brightness.py``, ...)."""
    guide = (ROOT / "docs" / "guides" / "adding-a-metric.md").read_text()
    return {name: body for name, body in re.findall(r"```(?:python|yaml)\n# ([^\n]+)\n(.*?)```", guide, flags=re.S)}


def test_a_metric_from_a_new_module_reaches_the_record_the_table_and_wandb(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from midms import job, runner

    blocks = _guide_blocks()
    assert set(blocks) == {"my_metrics/brightness.py", "metrics entry"}
    (tmp_path / "plugins" / "my_metrics").mkdir(parents=True)
    (tmp_path / "plugins" / "my_metrics" / "brightness.py").write_text(blocks["my_metrics/brightness.py"])
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    entry = yaml.safe_load(blocks["metrics entry"])  # the guide's config entry, composed as an override
    ((name, conf),) = entry.items()
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": tmp_path, "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(key, str(value))
    summaries = []

    def finish_keeping_the_summary(loggers, status, results_file=None):  # the offline run's summary at the end
        summaries.extend(dict(lg.experiment.summary) for lg in loggers if type(lg).__name__ == "WandbLogger")
        finish(loggers, status, results_file)

    finish = job.tracking.finish
    monkeypatch.setattr(job.tracking, "finish", finish_keeping_the_summary)
    run_dir = tmp_path / "runs" / "one"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        plugin = f"+metrics.{name}._target_={conf['_target_']}"
        paths = [f"paths.output_dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
        cfg = compose("config", overrides=[*TINY, "model=copy_exemplar", *paths, plugin])
    runner.run(cfg)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "completed", res["error"]
    samples = sorted((run_dir / "samples").glob("*.png"))
    by_hand = np.mean([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64).mean() / 255 for p in samples])
    assert res["metrics"]["brightness"] == pytest.approx(by_hand, rel=1e-6)
    info = res["metric_info"]["brightness"]
    assert info == {"metric": "brightness", "direction": "lower", "headline": True, "stable_min_images": 4,
                    "num_images": len(samples), "implementation": None, "unit": ""}  # fmt: skip
    assert res["protocol"]["metrics"]["brightness.computed_on"] == "the saved 8-bit outputs"

    assert report([str(tmp_path / "runs")]) == 0
    table = (tmp_path / "runs" / "report" / "table.md").read_text()
    assert "brightness ↓" in table and f"{res['metrics']['brightness']:.4g}" in table

    (summary,) = summaries
    assert summary["eval/brightness"] == pytest.approx(res["metrics"]["brightness"])
    assert dict(summary["eval_info/metric_info"]["brightness"])["direction"] == "lower"
