"""The guide to adding a method (``docs/guides/adding-a-method.md``), built from its own code blocks and run through
the real entry point, so the guide cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from e2e import TINY

from midms.record import RunRecord
from midms.reporting import collect_jobs

ROOT = Path(__file__).resolve().parents[1]


def _guide_files() -> dict[str, str]:
    """The fenced blocks of the guide, keyed by the path on their first line (``# my_methods/...``)."""
    guide = (ROOT / "docs" / "guides" / "adding-a-method.md").read_text()
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", guide, flags=re.S)
    return dict(blocks)


def test_the_guide_builds_a_method_that_trains_evaluates_and_appears_in_the_report(isolated_env, tmp_path):
    files = _guide_files()
    assert set(files) == {"my_methods/tinted_edges.py", "conf/model/tinted_edges.yaml"}
    (tmp_path / "my_methods").mkdir()
    (tmp_path / "my_methods" / "tinted_edges.py").write_text(files["my_methods/tinted_edges.py"])
    (tmp_path / "my_conf" / "model").mkdir(parents=True)  # the user's own config folder, on Hydra's search path
    (tmp_path / "my_conf" / "model" / "tinted_edges.yaml").write_text(files["conf/model/tinted_edges.yaml"])
    env = {**isolated_env, "PYTHONPATH": f"{tmp_path}:{isolated_env['PYTHONPATH']}"}
    run_dir = tmp_path / "job"
    cmd = [sys.executable, str(ROOT / "run.py"), *TINY, "model=tinted_edges", f"hydra.searchpath=[file://{tmp_path}/my_conf]",
           "logger=none", f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = RunRecord.read(run_dir / "results.json")
    assert record.status == "completed" and record.model == "tinted_edges"
    assert record.train["global_step"] == 4  # one epoch: 16 training scenes in batches of 4
    assert record.model_protocol == {"model": "tinted_edges", "lr": 0.01}
    assert {"psnr", "ssim", "swd"} <= set(record.metrics) and "matching_accuracy" in record.skipped  # no warp
    table, _ = collect_jobs(run_dir)
    assert table["model"].tolist() == ["tinted_edges"] and table["status"].tolist() == ["completed"]
